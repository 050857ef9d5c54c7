"""Byte ranges of Blob service requests: `x-ms-range` (preferred) or `Range`, `bytes=a-b`."""

from __future__ import annotations

from ..domain.limits import BYTE_RANGE
from .errors import BlobError, invalid_header

PAGE = 512
MAX_PAGE_WRITE = 4 * 1024 * 1024


def requested(headers) -> tuple[str, str] | None:
    """(header name, value) of the range the request names, x-ms-range first."""
    for name in ("x-ms-range", "range"):
        value = headers.get(name)
        if value:
            return name, value.strip()
    return None


def parse(headers, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) a read asks for, clipped to the blob; None for the whole blob.
    A start beyond the blob is Storage's 416 InvalidRange."""
    found = requested(headers)
    if found is None:
        return None
    name, value = found
    match = BYTE_RANGE.fullmatch(value)
    if not match or not match.group(1):
        raise invalid_header(name, value)
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if end < start:
        raise invalid_header(name, value)
    if start >= size:
        raise BlobError(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
    return start, min(end, size - 1)


def page_write(headers, size: int) -> tuple[int, int]:
    """The (offset, length) of a Put Page: 512-aligned, within the blob, at most 4 MiB."""
    found = requested(headers)
    if found is None:
        raise BlobError(400, "MissingRequiredHeader", "Put Page needs x-ms-range (or Range).", HeaderName="x-ms-range")
    name, value = found
    match = BYTE_RANGE.fullmatch(value)
    if not match or not match.group(1) or not match.group(2):
        raise invalid_header(name, value)
    start, end = int(match.group(1)), int(match.group(2))
    length = end - start + 1
    if end < start or start % PAGE or length % PAGE:
        raise BlobError(416, "InvalidPageRange", "The page range specified is invalid.")
    if length > MAX_PAGE_WRITE:
        raise BlobError(413, "RequestBodyTooLarge", f"A Put Page writes at most {MAX_PAGE_WRITE} bytes.")
    if end >= size:
        raise BlobError(416, "InvalidPageRange", "The page range specified is invalid.")
    return start, length


def listing_range(headers, size: int) -> tuple[int, int]:
    """The [start, end) a Get Page Ranges covers: the range it names (page-aligned) or the whole blob."""
    found = parse(headers, size) if size else None
    if found is None:
        return 0, size
    start, end = found
    if start % PAGE or (end + 1) % PAGE and end + 1 != size:
        raise BlobError(416, "InvalidPageRange", "The page range specified is invalid.")
    return start, end + 1
