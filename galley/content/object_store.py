"""Where chunks live: a small driver interface (as glance_store has) with a folder and an S3 driver.

A store is addressed by URL: file:///var/lib/galley/eastus/1/r0 or
s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1 (credentials from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ?access_key=&secret_key=).
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import parse_qs, urlparse


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
        path = self._path(key)
        if key[:2] not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(key[:2])
        # Write beside the target and rename: a reader never sees half an object.
        tmp = f"{path.parent}/.incoming-{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as error:
            _unlink_quietly(tmp)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"no space left in {self.root}") from error
            raise

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
                    if not item.name.startswith(".incoming-"):
                        yield item.name

    def sync(self) -> None:
        """Flush written objects to disk (called before a write is acknowledged)."""
        os.sync()


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
