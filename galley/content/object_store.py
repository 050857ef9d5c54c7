"""Where chunks live: a small driver interface (as glance_store has) with a folder and an S3 driver.

A store is addressed by URL: file:///var/lib/galley/eastus/1/r0 or
s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1 (credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ?access_key=&secret_key=).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import os
import uuid
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import parse_qs, urlparse


# Temporary names unique to this process (next() on a count is atomic under the GIL).
_PROCESS_TAG = uuid.uuid4().hex[:12]
_incoming = itertools.count()
_PUT_ATTEMPTS = 3  # writes of one object whose temporary file a collection may remove midway (put_parts)
_SYNC_FILE_RANGE_WRITE = 2


def _libc_sync_file_range():
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux: writeback starts when the kernel decides
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    return function


_sync_file_range = _libc_sync_file_range()


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages to disk now, without waiting for it.

    Left alone, the kernel keeps gigabytes of a large upload's chunks dirty (up to its background
    ratio of RAM) and writes them only at the sync that acknowledges the upload, so the client
    waits for all of the disk's work after the last byte arrived; started per object, the disk
    works while the network is still receiving, and the final sync has little left to do. (The
    call may wait when the device's queue is full: that holds back a writer that outruns the disk.)"""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # an error (a file system without it) changes nothing


class StoreFull(Exception):
    """The location has no room left for what is being written."""


class MissingObject(Exception):
    pass


class ObjectStore(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def keys(self) -> Iterator[str]: ...


class FolderStore:
    """Objects as files under a folder, fanned out by the key's first two characters."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = self.root.as_uri()
        self._made: set[str] = set()  # fan-out folders known to exist

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        self.put_parts(key, (data,))

    def put_parts(self, key: str, parts: tuple[bytes, ...], durable: bool = False) -> None:
        """Store the concatenation of `parts` as one object (written with one writev, never joined).

        `durable`: on disk when this returns (the file's data, then its name), for a write that is
        acknowledged one by one (a Put Page); otherwise its writeback is only started, and the
        writer makes a whole upload durable at its end (`sync`)."""
        folder = f"{self.root}/{key[:2]}"
        if key[:2] not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(key[:2])
        for attempt in range(_PUT_ATTEMPTS):
            # Write beside the target and rename: a reader never sees half an object.
            tmp = f"{folder}/.incoming-{_PROCESS_TAG}-{next(_incoming)}"
            try:
                self._write_file(tmp, parts, durable)
                os.replace(tmp, f"{folder}/{key}")
            except FileNotFoundError:
                # A collection that took this writer for dead (its lease ran out) removed the
                # temporary file as a dead write's leftover (old_keys): write it again.
                if attempt + 1 == _PUT_ATTEMPTS:
                    raise
                continue
            except OSError as error:
                _unlink_quietly(tmp)
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreFull(f"no space left in {self.root}") from error
                raise
            if durable:
                _fsync_folder(folder)
            return

    @staticmethod
    def _write_file(path: str, parts: tuple[bytes, ...], durable: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _writev_all(fd, [memoryview(part).cast("B") for part in parts])
            if durable:
                os.fdatasync(fd)
            else:
                start_writeback(fd)
        finally:
            os.close(fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingObject(f"{key} is not in {self.url}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        _unlink_quietly(self._path(key))

    def keys(self) -> Iterator[str]:
        if not self.root.exists():
            return
        for fan in sorted(self.root.iterdir()):
            if fan.is_dir():
                for item in sorted(fan.iterdir()):
                    if not item.name.startswith((".incoming-", ".stray-")):
                        yield item.name

    def old_keys(self, older_than: float) -> Iterator[str]:
        """Keys of objects last written before `older_than` (a Unix time). Temporary files of
        writes that died before then (a killed process) are removed on the way."""
        if not self.root.exists():
            return
        for fan in sorted(self.root.iterdir()):
            if not fan.is_dir():
                continue
            for item in os.scandir(fan):
                try:
                    old = item.stat().st_mtime < older_than
                except FileNotFoundError:
                    continue
                if old and item.name.startswith((".incoming-", ".stray-")):
                    _unlink_quietly(item.path)
                elif old:
                    yield item.name

    def delete_stray(self, key: str, older_than: float, unrecorded) -> bool:
        """Delete an object nothing records, only if it is still old and still unrecorded now.

        A writer that finds no row for a chunk writes its object again (a new file, so a new
        mtime) before it records it; a sweep that deleted from an earlier listing could remove
        that fresh object. So the object is first renamed aside (atomic), and only then judged: a
        fresh file (a writer's) or one recorded meanwhile is put back (a writer may have written
        it again in between: the same bytes, as objects are named by their hash), any other is
        deleted. `unrecorded()` asks the database again."""
        path = self._path(key)
        aside = f"{path.parent}/.stray-{_PROCESS_TAG}-{next(_incoming)}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        try:
            if os.stat(aside).st_mtime < older_than and unrecorded():
                os.unlink(aside)
                return True
            os.replace(aside, path)
            return False
        except BaseException:
            if os.path.exists(aside):
                os.replace(aside, path)
            raise

    def sync(self) -> None:
        """Flush written objects to disk (called before a write is acknowledged)."""
        os.sync()


def _fsync_folder(folder: str) -> None:
    """Make the names in `folder` durable (a rename into it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writev_all(fd: int, views: list[memoryview]) -> None:
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def open_store(url: str) -> ObjectStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FolderStore(parsed.path)
    if parsed.scheme == "s3":
        from .s3_store import S3Store  # boto3 is only imported when an S3 store is configured

        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return S3Store(bucket=parsed.netloc, prefix=parsed.path.strip("/"), **options)
    raise ValueError(f"unsupported store URL {url!r}: use file:///path or s3://bucket/prefix?endpoint=…")
