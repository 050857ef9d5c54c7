"""The wire format of Blob service operations: which operation a request is, and the handlers
for page blobs (Put Blob of a page blob, Put Page, Get Page Ranges, Get Blob, Get Blob Properties).

More handlers (block blobs, containers, listings) are added with `register(name, handler)`.
"""

from __future__ import annotations

import base64
import hashlib
from email.utils import format_datetime
from typing import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ..domain.limits import MAX_UPLOAD_SIZE_BYTES, ascii_number
from . import copy_state, ranges
from .accounts import (ABORT_COPY_BLOB, COPY_BLOB, DELETE_BLOB, DELETE_CONTAINER, GET_BLOB, GET_BLOB_PROPERTIES, GET_BLOCK_LIST,
                       GET_CONTAINER_PROPERTIES, GET_PAGE_RANGES, LIST_BLOBS, LIST_CONTAINERS, PUT_BLOB,
                       PUT_BLOCK, PUT_BLOCK_LIST, PUT_PAGE, CREATE_CONTAINER, BlobAccount, BlobRequest,
                       PageBlob)
from .errors import BlobError, invalid_header, missing_header, standard_headers, unsupported

Handler = Callable[[BlobAccount, BlobRequest], Awaitable[Response]]
HANDLERS: dict[str, Handler] = {}
STREAM_PIECE = 4 * 1024 * 1024


def register(name: str, handler: Handler) -> None:
    HANDLERS[name] = handler


def identify(method: str, query: dict[str, str], container: str | None, blob: str | None,
             headers=None) -> str | None:
    comp, restype = query.get("comp", ""), query.get("restype", "")
    if blob:
        if (method, comp) == ("PUT", "") and headers is not None and "x-ms-copy-source" in headers:
            return COPY_BLOB  # a Put Blob naming a source: Copy Blob (or Copy Blob From URL)
        table = {("PUT", ""): PUT_BLOB, ("PUT", "page"): PUT_PAGE, ("PUT", "block"): PUT_BLOCK,
                 ("PUT", "blocklist"): PUT_BLOCK_LIST, ("GET", "blocklist"): GET_BLOCK_LIST,
                 ("GET", ""): GET_BLOB, ("HEAD", ""): GET_BLOB_PROPERTIES,
                 ("GET", "pagelist"): GET_PAGE_RANGES, ("DELETE", ""): DELETE_BLOB,
                 ("PUT", "copy"): ABORT_COPY_BLOB}
        return table.get((method, comp))
    if container and restype == "container":
        table = {("PUT", ""): CREATE_CONTAINER, ("DELETE", ""): DELETE_CONTAINER,
                 ("GET", ""): GET_CONTAINER_PROPERTIES, ("HEAD", ""): GET_CONTAINER_PROPERTIES,
                 ("GET", "list"): LIST_BLOBS}
        return table.get((method, comp))
    if not container and method == "GET" and comp == "list":
        return LIST_CONTAINERS
    return None


def blob_headers(request: BlobRequest, blob: PageBlob) -> dict[str, str]:
    return {**standard_headers(request.version), "ETag": blob.etag,
            "Last-Modified": format_datetime(blob.last_modified, usegmt=True)}


def _page_blob(account: BlobAccount, request: BlobRequest) -> PageBlob:
    blob = account.page_blob(request.container, request.blob)
    if blob is None:
        raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
    return blob


def refuse_declared_over(request: BlobRequest, limit: int) -> None:
    """Storage's 413 for a body whose declared Content-Length is over `limit` (or not a number)."""
    declared = request.headers.get("content-length")
    if declared is not None and ((size := ascii_number(declared)) is None or size > limit):
        raise BlobError(413, "RequestBodyTooLarge", f"The request body is larger than {limit} bytes.")


async def read_body(request: BlobRequest, limit: int) -> bytes:
    return b"".join(await read_body_pieces(request, limit))


async def read_body_pieces(request: BlobRequest, limit: int) -> list[bytes]:
    """The body as the pieces it arrived in (not joined: that copy can be made off the event loop)."""
    refuse_declared_over(request, limit)
    parts, size = [], 0
    async for piece in request.http.stream():
        size += len(piece)
        if size > limit:
            raise BlobError(413, "RequestBodyTooLarge", f"The request body is larger than {limit} bytes.")
        parts.append(piece)
    return parts


def _check_and_write(request: BlobRequest, blob: PageBlob, offset: int, pieces: list[bytes]) -> dict[str, str]:
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    echoed = check_integrity(request, data)
    blob.write_pages(offset, data)
    return echoed


def check_integrity(request: BlobRequest, data: bytes) -> dict[str, str]:
    """Content-MD5 and x-ms-content-crc64, when sent, must match the body; echoed back."""
    echoed = {}
    md5 = request.headers.get("content-md5")
    if md5:
        if base64.b64encode(hashlib.md5(data).digest()).decode() != md5:
            raise BlobError(400, "Md5Mismatch", "The MD5 value specified in the request did not match with "
                            "the MD5 value calculated by the server.", UserSpecifiedMd5=md5)
        echoed["Content-MD5"] = md5
    crc = request.headers.get("x-ms-content-crc64")
    if crc:
        from azure.storage.extensions import checksums  # the CRC-64 Azure Storage and its SDKs use

        computed = base64.b64encode(checksums.crc64.compute(data, 0).to_bytes(8, "little")).decode()
        if computed != crc:
            raise BlobError(400, "Crc64Mismatch", "The CRC64 value specified in the request did not match "
                            "with the CRC64 value calculated by the server.", UserSpecifiedCrc64=crc)
        echoed["x-ms-content-crc64"] = crc
    return echoed


async def put_blob(account: BlobAccount, request: BlobRequest) -> Response:
    kind = request.headers.get("x-ms-blob-type")
    if kind != "PageBlob":
        other = HANDLERS.get(f"{PUT_BLOB}:{kind}")
        if other is None:
            raise invalid_header("x-ms-blob-type", kind, f"Blobs of type {kind} cannot be created here.")
        return await other(account, request)
    length = request.headers.get("x-ms-blob-content-length")
    if length is None:
        raise missing_header("x-ms-blob-content-length")
    size = ascii_number(length)
    # No page blob here outgrows the largest disk upload (and its size must fit the database).
    if size is None or size % ranges.PAGE or size > MAX_UPLOAD_SIZE_BYTES:
        raise invalid_header("x-ms-blob-content-length", length)
    if await read_body(request, 0):
        raise invalid_header("Content-Length", request.headers.get("content-length"))
    blob = await run_in_threadpool(account.create_page_blob, request.container, request.blob, size)
    return Response(status_code=201, headers={**blob_headers(request, blob), "x-ms-request-server-encrypted": "true"})


async def put_page(account: BlobAccount, request: BlobRequest) -> Response:
    blob = _page_blob(account, request)
    offset, length = ranges.page_write(request.headers, blob.size)
    mode = (request.headers.get("x-ms-page-write") or "").lower()
    echoed = {}
    if mode == "update":
        pieces = await read_body_pieces(request, ranges.MAX_PAGE_WRITE)
        received = sum(len(p) for p in pieces)
        if received != length:
            raise BlobError(400, "InvalidHeaderValue" if received else "MissingRequiredHeader",
                            f"The body holds {received} bytes but the range names {length}.",
                            HeaderName="Content-Length")
        # One trip to a thread for joining the pieces (a copy of up to 4 MiB), checking MD5 or
        # CRC-64 and storing: none of it on the event loop, which receives every connection's bytes.
        echoed = await run_in_threadpool(_check_and_write, request, blob, offset, pieces)
    elif mode == "clear":
        if await read_body(request, 0):
            raise invalid_header("Content-Length", request.headers.get("content-length"))
        await run_in_threadpool(blob.clear_pages, offset, length)
    else:
        raise invalid_header("x-ms-page-write", mode) if mode else missing_header("x-ms-page-write")
    return Response(status_code=201, headers={**blob_headers(request, blob), **echoed,
                                              "x-ms-blob-sequence-number": "0",
                                              "x-ms-request-server-encrypted": "true"})


async def get_page_ranges(account: BlobAccount, request: BlobRequest) -> Response:
    blob = _page_blob(account, request)
    start, end = ranges.listing_range(request.headers, blob.size)
    runs = await run_in_threadpool(blob.page_ranges, start, end)
    body = ('<?xml version="1.0" encoding="utf-8"?><PageList>'
            + "".join(f"<PageRange><Start>{a}</Start><End>{b - 1}</End></PageRange>" for a, b in runs)
            + "</PageList>")
    return Response(body, media_type="application/xml",
                    headers={**blob_headers(request, blob), "x-ms-blob-content-length": str(blob.size)})


def _properties(request: BlobRequest, blob: PageBlob) -> dict[str, str]:
    # Storage accounts' blobs may be block blobs, with their own content type (H6's account_blobs.py).
    kind = getattr(blob, "blob_type", "PageBlob")
    headers = {**blob_headers(request, blob), "x-ms-blob-type": kind, "Accept-Ranges": "bytes",
               "Content-Type": getattr(blob, "content_type", None) or "application/octet-stream",
               "x-ms-lease-state": "available", "x-ms-lease-status": "unlocked",
               "x-ms-server-encrypted": "true",
               "x-ms-creation-time": format_datetime(blob.last_modified, usegmt=True)}
    if kind == "PageBlob":
        headers["x-ms-blob-sequence-number"] = "0"
    return headers | copy_state.headers(blob)


async def get_blob_properties(account: BlobAccount, request: BlobRequest) -> Response:
    blob = _page_blob(account, request)
    return Response(status_code=200, headers={**_properties(request, blob), "Content-Length": str(blob.size)})


async def get_blob(account: BlobAccount, request: BlobRequest) -> Response:
    blob = _page_blob(account, request)
    headers = _properties(request, blob)
    span = ranges.parse(request.headers, blob.size) if blob.size else None
    if span is None:
        start, end, status = 0, blob.size - 1, 200
    else:
        (start, end), status = span, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    length = end - start + 1
    headers["Content-Length"] = str(length)
    if request.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
        if span is None or length > STREAM_PIECE:
            raise BlobError(400, "OutOfRangeInput", "x-ms-range-get-content-md5 needs a range of at most 4 MiB.")
        data = await run_in_threadpool(blob.read, start, length)
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        return Response(data, status_code=status, headers=headers)
    if length <= STREAM_PIECE:
        data = await run_in_threadpool(blob.read, start, length) if length > 0 else b""
        return Response(data, status_code=status, headers=headers)

    async def pieces():
        position = start
        while position <= end:
            size = min(STREAM_PIECE, end + 1 - position)
            yield await run_in_threadpool(blob.read, position, size)
            position += size

    return StreamingResponse(pieces(), status_code=status, headers=headers)


async def not_here(_account: BlobAccount, request: BlobRequest) -> Response:
    raise unsupported(request.operation)


for _name, _handler in ((PUT_BLOB, put_blob), (PUT_PAGE, put_page), (GET_PAGE_RANGES, get_page_ranges),
                        (GET_BLOB_PROPERTIES, get_blob_properties), (GET_BLOB, get_blob)):
    register(_name, _handler)
