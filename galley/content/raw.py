"""Raw disk images: the file is the virtual disk. Holes are found with SEEK_DATA/SEEK_HOLE."""

from __future__ import annotations

import errno
import os
from typing import Iterator

from .disk_image import DiskImage, Extent, ImageSource, iter_data, pread_exact, pwrite_sparse

# lseek errors meaning "this file system cannot tell holes from data".
_NO_SEEK_DATA = {errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS}


def file_extents(fd: int, start: int, end: int) -> Iterator[Extent]:
    """Extents of ``[start, end)`` of an open file, relative to ``start``.

    Uses SEEK_DATA/SEEK_HOLE; where the file system does not support them the rest of the
    range is reported as one data extent.
    """
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but hole up to end of file
                yield pos - start, end - pos, False
                return
            if exc.errno in _NO_SEEK_DATA:
                yield pos - start, end - pos, True
                return
            raise
        if data >= end:
            yield pos - start, end - pos, False
            return
        if data > pos:
            yield pos - start, data - pos, False
        try:
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError as exc:
            if exc.errno in _NO_SEEK_DATA:
                hole = end
            else:
                raise
        hole = min(max(hole, data + 1), end)
        yield data - start, hole - data, True
        pos = hole


class RawImage(DiskImage):
    format = "raw"

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.virtual_size = os.lseek(self._fd, 0, os.SEEK_END)
        except BaseException:
            os.close(self._fd)
            raise

    def extents(self) -> Iterator[Extent]:
        return file_extents(self._fd, 0, self.virtual_size)

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        return pread_exact(self._fd, offset, length, "raw data")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_raw_fd(source: ImageSource, fd: int) -> None:
    """Write the source's virtual disk into ``fd`` from offset 0, sparse: holes and zeros are
    skipped, and the file is truncated to exactly the virtual size."""
    os.ftruncate(fd, 0)
    os.ftruncate(fd, source.virtual_size)
    for offset, data in iter_data(source):
        pwrite_sparse(fd, offset, data)


def write_raw(source: ImageSource, path: str | os.PathLike, *, sync: bool = True) -> None:
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        write_raw_fd(source, fd)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
