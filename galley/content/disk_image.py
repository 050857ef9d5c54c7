"""What every disk format reader has in common: the error type, the extent model, helpers.

A disk image is read as a sequence of extents ``(offset, length, has_data)`` that cover the
virtual disk ``[0, virtual_size)`` in order, with no gaps and no overlaps. ``has_data`` is
False where the format says nothing is stored (a hole, an unallocated block); such ranges read
as zeros. Adjacent extents of the same kind are merged.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Protocol

SECTOR = 512
_ZERO_CHUNK = 64 * 1024
_ZEROS = bytes(_ZERO_CHUNK)

Extent = tuple[int, int, bool]


class DiskFormatError(ValueError):
    """The file is not a valid image of the declared or detected format; the message says why."""


class ImageSource(Protocol):
    """Anything a writer can copy from: a :class:`DiskImage` or a look-alike."""

    virtual_size: int

    def extents(self) -> Iterable[Extent]: ...

    def read(self, offset: int, length: int) -> bytes: ...


class DiskImage:
    """A virtual disk opened for reading. Subclasses set ``format`` and ``virtual_size``."""

    format: str = ""
    virtual_size: int = 0
    path: str = ""

    def extents(self) -> Iterator[Extent]:
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def data_extents(self) -> Iterator[tuple[int, int]]:
        """``(offset, length)`` of the extents that hold data."""
        for offset, length, has_data in self.extents():
            if has_data:
                yield offset, length

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise ValueError(
                f"read of {length} bytes at offset {offset} is outside the virtual disk "
                f"of {self.virtual_size} bytes"
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {self.virtual_size} bytes {self.path!r}>"


def merge_extents(extents: Iterable[Extent]) -> Iterator[Extent]:
    """Join adjacent extents of the same kind and drop empty ones."""
    cur_off = cur_len = 0
    cur_data = None
    for offset, length, has_data in extents:
        if length <= 0:
            continue
        if cur_data is has_data and cur_off + cur_len == offset:
            cur_len += length
            continue
        if cur_data is not None:
            yield cur_off, cur_len, cur_data
        cur_off, cur_len, cur_data = offset, length, has_data
    if cur_data is not None:
        yield cur_off, cur_len, cur_data


def checked_extents(source: ImageSource) -> Iterator[Extent]:
    """The source's extents, verified to cover ``[0, virtual_size)`` in order."""
    size = source.virtual_size
    pos = 0
    for offset, length, has_data in source.extents():
        if offset != pos or length < 0 or offset + length > size:
            raise ValueError(
                f"source extents are not contiguous: got ({offset}, {length}) at position {pos} "
                f"of a {size}-byte disk"
            )
        pos += length
        yield offset, length, bool(has_data)
    if pos != size:
        raise ValueError(f"source extents end at {pos}, the virtual size is {size}")


def iter_data(source: ImageSource, chunk_size: int = 4 * 1024 * 1024) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` pieces of at most ``chunk_size`` covering the source's data extents."""
    for offset, length, has_data in checked_extents(source):
        if not has_data:
            continue
        end = offset + length
        while offset < end:
            n = min(chunk_size, end - offset)
            data = source.read(offset, n)
            if len(data) != n:
                raise ValueError(f"source returned {len(data)} bytes for a read of {n} at {offset}")
            yield offset, data
            offset += n


def is_zero(data) -> bool:
    """True when every byte of ``data`` is zero (compares in C, 64 KiB at a time)."""
    view = memoryview(data).cast("B")
    for i in range(0, len(view), _ZERO_CHUNK):
        piece = view[i : i + _ZERO_CHUNK]
        if piece != _ZEROS[: len(piece)]:
            return False
    return True


def pwrite_sparse(fd: int, offset: int, data) -> None:
    """Write ``data`` at ``offset`` but leave 64 KiB pieces that are all zero as holes.

    The caller makes the file long enough (ftruncate or a later write) so skipped tails exist.
    """
    view = memoryview(data).cast("B")
    for i in range(0, len(view), _ZERO_CHUNK):
        piece = view[i : i + _ZERO_CHUNK]
        if piece != _ZEROS[: len(piece)]:
            pwrite_all(fd, offset + i, piece)


def pwrite_all(fd: int, offset: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def pread_exact(fd: int, offset: int, length: int, what: str = "data") -> bytes:
    """Read exactly ``length`` bytes or fail with a truncation :class:`DiskFormatError`."""
    parts = []
    got = 0
    while got < length:
        piece = os.pread(fd, length - got, offset + got)
        if not piece:
            raise DiskFormatError(
                f"file is truncated: {what} at offset {offset} needs {length} bytes, "
                f"only {got} could be read"
            )
        parts.append(piece)
        got += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)
