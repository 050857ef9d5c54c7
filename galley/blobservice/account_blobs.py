"""The blobs and containers of storage accounts, kept on this server's disk, and their publication
into the chunk store as disk images that versions, images and disks can be made from.

Layout, under `{home}/account-blobs/{account}/` (the account's folder is named by its id and
creationTime, so a deleted and re-made account never sees the old blobs):

  {container}/container.json                 the container (Create Container)
  {container}/{blob hash}/blob.json          the blob: name, type, size, etag, times, block list
  {container}/{blob hash}/data               a block blob's committed bytes
  {container}/{blob hash}/blocks/{id hash}   a block blob's uncommitted blocks (Put Block)
  {container}/{blob hash}/pages/             a page blob: galley.blobservice.page_store's folder

Which blobs are sources. Azure takes page blobs holding a fixed VHD; Galley also takes a block
blob holding a fixed VHD and a page blob holding a raw disk (any 512-byte multiple), as its own
/blob/ uploads always have. Such a blob is *published*: its disk (the VHD's data, without the
footer) is stored in the chunk store under `ids.blob_key(account, container, blob)`, where
version, image and disk sources find it. A block blob is published when it is committed (Put
Blob, Put Block List), in the same request. A page blob has no commit: it is published once no
Put Page has arrived for SETTLE_SECONDS; a Put Page first withdraws the published disk, so a
source never sees a page blob half-written — only as it was after a quiet moment (a client that
pauses longer than that mid-upload is seen as it was then). Publication holds off page writes
while it reads the pages.

Limits: blob data lives on this server's home (like an upload spool), so several API servers on
one database do not share account blobs; blob metadata (x-ms-meta-*), snapshots, leases,
append blobs and the per-blob access tier are not kept.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ..content.chunks import CHUNK_SIZE
from ..content.formats import open_disk
from ..content.vhd import FOOTER_SIZE, VhdFooter
from ..domain import ids
from ..domain.resource import Resource
from .errors import BlobError
from .page_store import PageStore

log = logging.getLogger("galley.blobservice")
SETTLE_SECONDS = 1.0
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
BLOCK_BLOB, PAGE_BLOB = "BlockBlob", "PageBlob"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _now() -> datetime:
    return datetime.now(UTC)


def new_etag() -> str:
    return f'"0x{time.time_ns():X}"'


def check_container_name(name: str) -> None:
    if not _CONTAINER.match(name):
        raise BlobError(400, "InvalidResourceName", "The specified resource name contains invalid characters: "
                        "container names are 3-63 lower-case letters, digits and single hyphens.")


def container_not_found() -> BlobError:
    return BlobError(404, "ContainerNotFound", "The specified container does not exist.")


def blob_not_found() -> BlobError:
    return BlobError(404, "BlobNotFound", "The specified blob does not exist.")


def _write_json(path: Path, value: dict) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False)
    with handle:
        handle.write(orjson.dumps(value))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


@dataclass
class Container:
    name: str
    etag: str
    last_modified: datetime


@dataclass
class BlobState:
    """A blob as blob.json records it (the PageBlob protocol's size, etag and last_modified)."""

    folder: Path
    name: str
    blob_type: str
    size: int
    etag: str
    last_modified: datetime
    created: datetime
    content_type: str = "application/octet-stream"
    content_md5: str | None = None
    blocks: list[tuple[str, int]] | None = None  # a block blob's committed blocks (id, length)
    content_id: str | None = None  # a page blob's held content (page_store)
    store_id: str | None = None
    published: bool = False
    copy: dict | None = None  # the last Copy Blob into it (copy_state.py), until it is overwritten

    @classmethod
    def load(cls, folder: Path) -> BlobState | None:
        try:
            raw = orjson.loads((folder / "blob.json").read_bytes())
        except FileNotFoundError:
            return None
        return cls(folder=folder, name=raw["name"], blob_type=raw["type"], size=raw["size"], etag=raw["etag"],
                   last_modified=datetime.fromisoformat(raw["lastModified"]),
                   created=datetime.fromisoformat(raw["created"]), content_type=raw.get("contentType") or
                   "application/octet-stream", content_md5=raw.get("contentMd5"),
                   blocks=[tuple(b) for b in raw["blocks"]] if raw.get("blocks") is not None else None,
                   content_id=raw.get("contentId"), store_id=raw.get("storeId"),
                   published=raw.get("published", False), copy=raw.get("copy"))

    def save(self) -> None:
        _write_json(self.folder / "blob.json", {
            "name": self.name, "type": self.blob_type, "size": self.size, "etag": self.etag,
            "lastModified": self.last_modified.isoformat(), "created": self.created.isoformat(),
            "contentType": self.content_type, "contentMd5": self.content_md5, "blocks": self.blocks,
            "contentId": self.content_id, "storeId": self.store_id, "published": self.published,
            "copy": self.copy})

    def touched(self) -> None:
        self.etag, self.last_modified = new_etag(), _now()


class BlockBlob:
    """A committed block blob, read as the PageBlob protocol reads (size, etag, read)."""

    blob_type = BLOCK_BLOB

    def __init__(self, state: BlobState) -> None:
        self.state = state
        self.size, self.etag, self.last_modified = state.size, state.etag, state.last_modified
        self.content_type, self.content_md5 = state.content_type, state.content_md5

    def read(self, offset: int, length: int) -> bytes:
        with open(self.state.folder / "data", "rb") as f:
            return os.pread(f.fileno(), length, offset)

    def _not_pages(self, *_args) -> None:
        raise BlobError(409, "InvalidBlobType", "The blob type is invalid for this operation: it is a block blob.")

    page_ranges = write_pages = clear_pages = _not_pages


class ListedBlob(BlockBlob):
    """A blob as a listing shows it, from blob.json alone (no file is opened)."""

    def __init__(self, state: BlobState) -> None:
        super().__init__(state)
        self.blob_type = state.blob_type


class _Gate:
    """Page writes share it; publication holds it alone."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writers = 0
        self._publishing = False

    def write(self):
        gate = self

        class _Hold:
            def __enter__(self):
                with gate._cond:
                    gate._cond.wait_for(lambda: not gate._publishing)
                    gate._writers += 1

            def __exit__(self, *exc):
                with gate._cond:
                    gate._writers -= 1
                    gate._cond.notify_all()
        return _Hold()

    def publish(self):
        gate = self

        class _Hold:
            def __enter__(self):
                with gate._cond:
                    gate._cond.wait_for(lambda: not gate._publishing and gate._writers == 0)
                    gate._publishing = True

            def __exit__(self, *exc):
                with gate._cond:
                    gate._publishing = False
                    gate._cond.notify_all()
        return _Hold()


class AccountPageBlob:
    """A storage account's page blob: H5's page store, plus withdrawal and publication."""

    blob_type = PAGE_BLOB

    def __init__(self, blobs: AccountBlobs, key: str, state: BlobState, pages: PageStore) -> None:
        self.blobs, self.key, self.state, self.pages = blobs, key, state, pages
        self.gate = _Gate()
        self.content_type, self.content_md5 = state.content_type, None

    @property
    def size(self) -> int:
        return self.state.size

    @property
    def etag(self) -> str:
        return self.state.etag

    @property
    def last_modified(self) -> datetime:
        return self.state.last_modified

    def read(self, offset: int, length: int) -> bytes:
        return self.pages.read(offset, length)

    def page_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        return self.pages.page_ranges(start, end)

    def write_pages(self, offset: int, data: bytes) -> None:
        with self.gate.write():
            self._withdraw()
            self.pages.write_pages(offset, data)
            self._changed()

    def clear_pages(self, offset: int, length: int) -> None:
        with self.gate.write():
            self._withdraw()
            self.pages.clear_pages(offset, length)
            self._changed()

    def _withdraw(self) -> None:
        if self.state.published:
            self.blobs.content.repo.drop_resource(self.key)
            self.state.published = False
            self.state.save()

    def _changed(self) -> None:
        self.state.touched()
        self.blobs.publisher.schedule(self)

    def publish(self) -> None:
        with self.gate.publish():
            if self.state.published or not os.path.isdir(self.state.folder):
                return
            size = self.size
            tail = self.pages.read(size - FOOTER_SIZE, FOOTER_SIZE) if size >= FOOTER_SIZE else b""
            disk_size = size - FOOTER_SIZE if _is_fixed_vhd_footer(tail, size) else size
            if disk_size <= 0 or disk_size % 512:
                return
            self.blobs.content.ingest(_PagesImage(self.pages, disk_size), self.blobs.store_id(), (self.key, -1))
            self.state.published = True
            self.state.save()


def _is_fixed_vhd_footer(tail: bytes, blob_size: int) -> bool:
    try:
        footer = VhdFooter.parse(tail)
    except Exception:  # noqa: BLE001 - anything that is not a valid footer
        return False
    return footer.disk_type == 2 and footer.current_size == blob_size - FOOTER_SIZE


class _PagesImage:
    """A page blob's first `virtual_size` bytes as content.ingest reads a disk image."""

    def __init__(self, pages: PageStore, virtual_size: int) -> None:
        self.pages, self.virtual_size = pages, virtual_size

    def extents(self) -> Iterator[tuple[int, int, bool]]:
        position = 0
        for a, b in self.pages.page_ranges(0, self.virtual_size):
            if a > position:
                yield position, a - position, False
            yield a, b - a, True
            position = b
        if position < self.virtual_size:
            yield position, self.virtual_size - position, False

    def read(self, offset: int, length: int) -> bytes:
        return self.pages.read(offset, length)


class Publisher:
    """Publishes page blobs once their writes have settled (one thread, started on demand)."""

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, AccountPageBlob]] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, blob: AccountPageBlob) -> None:
        with self._cond:
            self._due[id(blob)] = (time.monotonic() + SETTLE_SECONDS, blob)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="blob-publisher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._due:
                    self._thread = None
                    return
                when, blob = min(self._due.values(), key=lambda item: item[0])
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                del self._due[id(blob)]
            try:
                blob.publish()
            except Exception:
                log.exception("publishing page blob %s failed", blob.state.name)


def account_folder(root: Path, account: Resource) -> Path:
    return root / _hash(f"{account.key}#{account.properties.get('creationTime', '')}")


def forget(home: Path | None, content, account: Resource) -> None:
    """A deleted account's page blobs' held contents and its blob files (its published disks go
    with the account's other content)."""
    content.repo.drop_prefix(f"held-pages:{account.key}/containers/")
    if home is not None:
        shutil.rmtree(account_folder(home / "account-blobs", account), ignore_errors=True)


class AccountBlobs:
    """One storage account's containers and blobs."""

    def __init__(self, root: Path, account: Resource, content, publisher: Publisher,
                 open_pages: dict[str, AccountPageBlob], lock: threading.Lock) -> None:
        self.folder = account_folder(root, account)
        self.account, self.content, self.publisher = account, content, publisher
        self._open, self._lock = open_pages, lock

    def store_id(self) -> str:
        return self.content.locations.home_store(self.account.location)

    # ---- containers -------------------------------------------------------------------------------
    def _container_folder(self, name: str) -> Path:
        check_container_name(name)
        return self.folder / name

    def container(self, name: str) -> Container | None:
        folder = self._container_folder(name)
        try:
            raw = orjson.loads((folder / "container.json").read_bytes())
        except FileNotFoundError:
            if self._legacy_names(name, ""):  # blobs put through Galley's /blob/ routes
                return Container(name, '"0x0"', _now())
            return None
        return Container(name, raw["etag"], datetime.fromisoformat(raw["lastModified"]))

    def create_container(self, name: str) -> Container:
        folder = self._container_folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / "container.json"
        with self._lock:
            if marker.exists():
                raise BlobError(409, "ContainerAlreadyExists", "The specified container already exists.")
            made = Container(name, new_etag(), _now())
            _write_json(marker, {"etag": made.etag, "lastModified": made.last_modified.isoformat()})
        return made

    def containers(self) -> list[Container]:
        if not self.folder.is_dir():
            return []
        found = [self.container(p.name) for p in sorted(self.folder.iterdir())
                 if (p / "container.json").exists()]
        return [c for c in found if c is not None]

    def delete_container(self, name: str) -> None:
        if self.container(name) is None:
            raise container_not_found()
        for blob in self.list_blobs(name, ""):
            self.delete_blob(name, blob.name)
        shutil.rmtree(self._container_folder(name), ignore_errors=True)

    def require_container(self, name: str) -> None:
        if self.container(name) is None:
            raise container_not_found()

    # ---- blobs ------------------------------------------------------------------------------------
    def key(self, container: str, blob: str) -> str:
        return ids.blob_key(self.account.id, container, blob)

    def _blob_folder(self, container: str, blob: str) -> Path:
        # Blob keys are case-insensitive in Galley's content records, so folders are too.
        return self._container_folder(container) / _hash(blob.lower())

    def state(self, container: str, blob: str) -> BlobState | None:
        return BlobState.load(self._blob_folder(container, blob))

    def get(self, container: str, blob: str):
        """The blob to read: a page blob, a block blob, or one put through /blob/ (a published disk)."""
        state = self.state(container, blob)
        if state is None:
            return self._legacy_blob(container, blob)
        if state.blob_type == PAGE_BLOB:
            return self.page_blob(container, blob)
        return BlockBlob(state)

    def page_blob(self, container: str, blob: str) -> AccountPageBlob | None:
        key = self.key(container, blob)
        with self._lock:
            opened = self._open.get(key)
            if opened is not None and os.path.isdir(opened.state.folder):
                return opened
            state = self.state(container, blob)
            if state is None or state.blob_type != PAGE_BLOB:
                return None
            pages = PageStore(state.folder / "pages", state.size, self.content, state.content_id, state.store_id)
            opened = self._open[key] = AccountPageBlob(self, key, state, pages)
        if not state.published:
            self.publisher.schedule(opened)  # e.g. after a restart in the middle of an upload
        return opened

    def create_page_blob(self, container: str, blob: str, size: int, content_type: str | None = None) -> AccountPageBlob:
        self.require_container(container)
        self.delete_blob(container, blob, missing_ok=True)
        folder = self._blob_folder(container, blob)
        folder.mkdir(parents=True)
        store_id = self.store_id()
        content_id = self.content.repo.new_content(size, CHUNK_SIZE, store_id)
        self.content.repo.hold_content(content_id, self._hold_key(container, blob))
        now = _now()
        BlobState(folder, blob, PAGE_BLOB, size, new_etag(), now, now, content_type or "application/octet-stream",
                  content_id=content_id, store_id=store_id).save()
        created = self.page_blob(container, blob)
        assert created is not None
        return created

    def _hold_key(self, container: str, blob: str) -> str:
        # Not under the blob's key prefix: listings of /blob/ and of containers must not see it.
        return f"held-pages:{self.key(container, blob)}"

    def stage_block(self, container: str, blob: str, block_id: str, source: Path) -> None:
        self.require_container(container)
        blocks = self._blob_folder(container, blob) / "blocks"
        blocks.mkdir(parents=True, exist_ok=True)
        os.replace(source, blocks / _hash(block_id))

    def commit_blocks(self, container: str, blob: str, wanted: list[tuple[str, str]],
                      content_type: str | None, tmp_dir: Path) -> BlockBlob:
        """Put Block List: `wanted` is [(list, block id)] with list Committed, Uncommitted or Latest."""
        self.require_container(container)
        folder = self._blob_folder(container, blob)
        current = self.state(container, blob)
        committed: dict[str, tuple[int, int]] = {}
        if current is not None and current.blob_type == BLOCK_BLOB and current.blocks:
            offset = 0
            for block_id, length in current.blocks:
                committed[block_id] = (offset, length)
                offset += length
        handle = tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="blocks-", delete=False)
        layout = []
        try:
            with handle:
                for where, block_id in wanted:
                    staged = folder / "blocks" / _hash(block_id)
                    if where in ("Uncommitted", "Latest") and staged.exists():
                        with open(staged, "rb") as part:
                            length = shutil.copyfileobj(part, handle) or staged.stat().st_size
                    elif where in ("Committed", "Latest") and block_id in committed:
                        offset, length = committed[block_id]
                        with open(folder / "data", "rb") as data:
                            data.seek(offset)
                            _copy(data, handle, length)
                    else:
                        raise BlobError(400, "InvalidBlockList", "The specified block list is invalid: block "
                                        f"'{block_id}' is not among the blob's {where.lower()} blocks.")
                    layout.append((block_id, length))
            return self._commit(container, blob, Path(handle.name), content_type, None, layout)
        finally:
            Path(handle.name).unlink(missing_ok=True)

    def put_block_blob(self, container: str, blob: str, source: Path, content_type: str | None,
                       content_md5: str | None) -> BlockBlob:
        self.require_container(container)
        return self._commit(container, blob, source, content_type, content_md5, None)

    def _commit(self, container: str, blob: str, source: Path, content_type: str | None,
                content_md5: str | None, blocks: list[tuple[str, int]] | None) -> BlockBlob:
        folder = self._blob_folder(container, blob)
        existing = self.state(container, blob)
        if existing is not None and existing.blob_type == PAGE_BLOB:
            self.delete_blob(container, blob)
        folder.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        key = self.key(container, blob)
        published = self._publish_file(source, key)
        os.replace(source, folder / "data")
        shutil.rmtree(folder / "blocks", ignore_errors=True)
        now = _now()
        state = BlobState(folder, blob, BLOCK_BLOB, size, new_etag(), now,
                          existing.created if existing else now, content_type or "application/octet-stream",
                          content_md5, blocks=blocks, published=published)
        state.save()
        return BlockBlob(state)

    def _publish_file(self, path: Path, key: str) -> bool:
        """A block blob that holds a fixed VHD becomes the blob's disk; any other drops it."""
        size = path.stat().st_size
        tail = b""
        if size >= FOOTER_SIZE:
            with open(path, "rb") as f:
                tail = os.pread(f.fileno(), FOOTER_SIZE, size - FOOTER_SIZE)
        if size > FOOTER_SIZE and _is_fixed_vhd_footer(tail, size):
            with open_disk(path, "vhd") as image:
                self.content.ingest(image, self.store_id(), (key, -1))
            return True
        self.content.repo.drop_resource(key)
        return False

    def delete_blob(self, container: str, blob: str, missing_ok: bool = False) -> None:
        key = self.key(container, blob)
        state = self.state(container, blob)
        legacy = state is None and -1 in self.content.repo.disk_contents(key)
        if state is None and not legacy:
            if missing_ok:
                return
            raise blob_not_found()
        with self._lock:
            opened = self._open.pop(key, None)
        if opened is not None:
            with opened.gate.publish():
                opened.pages.close()
        if state is not None:
            if state.blob_type == PAGE_BLOB:
                self.content.repo.release_held_content(self._hold_key(container, blob))
            shutil.rmtree(state.folder, ignore_errors=True)
        self.content.repo.drop_resource(key)

    def list_blobs(self, container: str, prefix: str) -> list:
        """Every blob of the container whose name starts with `prefix`, sorted by name."""
        found: dict[str, object] = {}
        folder = self._container_folder(container)
        if folder.is_dir():
            for entry in folder.iterdir():
                state = BlobState.load(entry) if entry.is_dir() else None
                if state is not None and state.name.startswith(prefix):
                    opened = self._open.get(self.key(container, state.name))  # its etag may be newer
                    found[state.name] = opened if opened is not None else ListedBlob(state)
        lowered = {name.lower() for name in found}
        for name in self._legacy_names(container, prefix):
            if name not in lowered:
                legacy = self._legacy_blob(container, name)
                if legacy is not None:
                    found[name] = legacy
        return [found[name] for name in sorted(found) if found[name] is not None]

    # ---- blobs put through Galley's own /blob/ routes: a published disk, read as a fixed VHD -------
    def _legacy_names(self, container: str, prefix: str) -> list[str]:
        base = self.key(container, "")
        return [key[len(base):] for key, _ in self.content.repo.contents_with_prefix(base + prefix.lower())]

    def _legacy_blob(self, container: str, blob: str):
        content_id = self.content.repo.disk_contents(self.key(container, blob)).get(-1)
        if content_id is None:
            return None
        return PublishedDisk(self.content, content_id, blob)


class PublishedDisk:
    """A disk put through /blob/: its data and a fixed VHD footer, as /blob/ serves it."""

    blob_type = PAGE_BLOB
    content_type, content_md5 = "application/octet-stream", None

    def __init__(self, content, content_id: str, name: str) -> None:
        record = content.repo.content(content_id)
        self.reader = content.reader(content_id, content.repo.placements(content_id))
        self.virtual = record["virtual_size"]
        self.footer = VhdFooter.new(2, self.virtual).pack() if self.virtual % 512 == 0 else b""
        self.size = self.virtual + len(self.footer)
        self.etag = f'"0x{hashlib.sha256(content_id.encode()).hexdigest()[:16].upper()}"'
        self.last_modified = datetime.fromtimestamp(record.get("created_at") or 0, UTC)
        self.state = type("LegacyState", (), {"name": name, "created": self.last_modified})()

    def read(self, offset: int, length: int) -> bytes:
        end = offset + length
        data = self.reader.read(offset, max(0, min(end, self.virtual) - offset)) if offset < self.virtual else b""
        if end > self.virtual:
            data += self.footer[max(0, offset - self.virtual):end - self.virtual]
        return data

    def page_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        return [(start, min(end, self.size))] if start < self.size else []

    def write_pages(self, *_args) -> None:
        raise BlobError(409, "InvalidBlobType", "This blob was uploaded through Galley's /blob/ route as a disk "
                        "image; upload it again through the Blob service to write its pages.")

    clear_pages = write_pages


def _copy(source, target, length: int) -> None:
    while length > 0:
        piece = source.read(min(length, 4 * 1024 * 1024))
        if not piece:
            raise BlobError(500, "InternalError", "A committed block is shorter than recorded.")
        target.write(piece)
        length -= len(piece)


def block_id_key(block_id: str) -> str:
    """Block ids are base64 of at most 64 bytes; all ids of a blob have the same length."""
    try:
        raw = base64.b64decode(block_id, validate=True)
    except ValueError:
        raw = b""
    if not block_id or not raw or len(raw) > 64:
        raise BlobError(400, "InvalidQueryParameterValue", "Value for one of the query parameters specified "
                        "in the request URI is invalid: blockid must be base64 of at most 64 bytes.",
                        QueryParameterName="blockid", QueryParameterValue=block_id)
    return block_id
