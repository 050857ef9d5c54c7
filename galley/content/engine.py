"""Moving disk content: ingest an image into a store, copy, replicate, read back, collect garbage.

Contents are manifests of 1 MiB chunks (see chunks.py); chunks are shared by every content in a
store that holds the same bytes, and all-zero chunks are never stored.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

from .. import uploads
from ..store.outage import first_line
from ..store.content_repository import ContentDropped, ContentRepository  # noqa: F401 (ContentDropped: what a writer's finish raises)
from . import chunks
from .allocator import keep_chunk_buffers_in_heap
from .chunks import CHUNK_SIZE, ChunkCorrupt
from .locations import Locations
from .object_store import MissingObject
from .store_outage import store_unavailable
from .writer import IN_FLIGHT_CHUNKS, ContentWriter

BATCH = 64
READ_AHEAD = 8  # chunks read from an image with one call when ingesting
FETCH_AHEAD = 16  # chunks being fetched while a reader streams out the one before (one file each)
_ZEROS = memoryview(bytes(CHUNK_SIZE))
DEFAULT_GRACE = 3600.0  # seconds a collection leaves half-written contents and unrecorded objects alone
CLOCK_SKEW = 5.0  # nodes' clocks disagree a little: a writer's start may read that much late
# Contents written in place (disk access sessions, page blobs) have no lease: while one exists, an
# unrecorded object younger than this may be one of their writes not recorded yet.
IN_PLACE_WRITES = 60.0


def _read_run(image, indexes: list[int], size: int) -> Iterator[tuple[int, bytes]]:
    """The chunks of consecutive `indexes`, read with one call, as views of that one buffer (not
    copied); all-zero ones are left out."""
    start = indexes[0] * CHUNK_SIZE
    block = memoryview(image.read(start, min(len(indexes) * CHUNK_SIZE, size - start)))
    for n, idx in enumerate(indexes):
        data = block[n * CHUNK_SIZE:(n + 1) * CHUNK_SIZE]
        if not chunks.is_zero(data):
            yield idx, data


class ContentUnavailable(Exception):
    """No readable copy of a chunk is left where it was looked for."""


@dataclass
class ReplicationProgress:
    bytes_total: int
    bytes_done: int = 0
    bytes_moved: int = 0


class ContentEngine:
    def __init__(self, repository: ContentRepository, locations: Locations, threads: int = 4,
                 bandwidth: int = 0) -> None:
        self.repo = repository
        self.locations = locations
        self.bandwidth = bandwidth
        keep_chunk_buffers_in_heap()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="galley-io")
        # Batches of writers are recorded and stored here (their chunks go through the pool)
        # while the writers produce the next ones; `in_flight` bounds the chunk data they hold.
        self.batch_writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="galley-ingest")
        self.in_flight = threading.BoundedSemaphore(IN_FLIGHT_CHUNKS)

    # ---- ingest ---------------------------------------------------------------------------------
    def ingest(self, image, store_id: str, attach: tuple[str, int],
               on_progress: Callable[[int], None] = lambda n: None) -> str:
        """Store a disk image's data chunks as the disk (resource key, lun) `attach` names.

        Until the last chunk is stored nothing changes for readers of that disk; a failure
        leaves the disk's previous content in place."""
        writer = self.writer(store_id, image.virtual_size)
        try:
            for idx, data in self._data_chunks(image):
                writer.add(idx, data)
                if idx % BATCH == 0:
                    on_progress(idx * CHUNK_SIZE)
        except BaseException:
            writer.abort()
            raise
        return writer.finish(attach)

    def writer(self, store_id: str, virtual_size: int) -> ContentWriter:
        """A new content in `store_id`, written chunk by chunk (see writer.py)."""
        return ContentWriter(self, store_id, virtual_size)

    def empty_content(self, virtual_size: int, store_id: str, attach: tuple[str, int]) -> str:
        content_id = self.repo.new_content(virtual_size, CHUNK_SIZE, store_id)
        self.repo.finish_content(content_id, attach)
        return content_id

    @staticmethod
    def _data_chunks(image) -> Iterator[tuple[int, bytes]]:
        """(index, bytes) of every chunk that holds data, read READ_AHEAD chunks at a time."""
        size = image.virtual_size
        pending: list[int] = []
        seen = -1
        for offset, length, has_data in image.extents():
            if not has_data:
                continue
            first, last = offset // CHUNK_SIZE, (offset + length - 1) // CHUNK_SIZE
            for idx in range(max(first, seen + 1), last + 1):
                if pending and (idx != pending[-1] + 1 or len(pending) == READ_AHEAD):
                    yield from _read_run(image, pending, size)
                    pending = []
                pending.append(idx)
                seen = idx
        if pending:
            yield from _read_run(image, pending, size)

    def write_batch(self, content_id: str, store_id: str, store, batch: list[tuple[int, bytes]]) -> list[str]:
        """Hash a batch of chunks, record them in the content's manifest and store the ones the
        store lacks (see ContentRepository for why in this order); the digests it stored."""
        digests = list(self._pool.map(lambda item: chunks.digest_of(item[1]), batch))
        entries = [(idx, digest, len(data)) for (idx, data), digest in zip(batch, digests)]
        present = self.repo.add_chunks(content_id, store_id, entries)
        missing = {digest: data for (_, data), digest in zip(batch, digests) if digest not in present}

        def put(item):
            digest, data = item
            codec, payload = chunks.encode_parts(data)
            if hasattr(store, "put_parts"):
                store.put_parts(digest, (codec, payload))
            else:
                store.put(digest, codec + bytes(payload))
            return digest, 1 + len(payload), len(data)

        return [digest for digest, _, _ in self._put_and_register(store_id, put, list(missing.items()))]

    def drop_if_unreferenced(self, store_id: str, digests: list[str]) -> int:
        """Delete those of `digests` nothing references any more (what an aborted write stored),
        with the same guard as collect_garbage: a chunk another writer touched is kept."""
        cutoff = time.time()
        store = self.locations.open(store_id)
        deleted = 0
        for digest in digests:
            if self.repo.delete_if_unreferenced(store_id, digest, cutoff,
                                                lambda digest=digest: store.delete(digest)):
                deleted += 1
        return deleted

    def _put_and_register(self, store_id: str, put, items: list) -> list[tuple[str, int, int]]:
        """Run `put` on every item; record in `store_id` every object that was written, even when
        some writes failed (then raise the first failure): an unrecorded object is one garbage
        collection can never find, and on a full store it would keep the space taken for good."""
        futures = [self._pool.submit(put, item) for item in items]
        stored, failure = [], None
        for future in futures:
            try:
                stored.append(future.result())
            except BaseException as error:  # noqa: BLE001 - re-raised below, after recording
                failure = failure or error
        self.repo.register_stored(store_id, stored)
        if failure is not None:
            raise failure
        return stored

    # ---- copies between stores ----------------------------------------------------------------------
    def replicate(self, content_ids: list[str], sources: list[str], target: str,
                  on_progress: Callable[[ReplicationProgress], None] = lambda p: None) -> ReplicationProgress:
        """Make every chunk of the contents present in `target`, copying only what it lacks.

        Restartable: chunks already in the target count as done and are not copied again.
        """
        wanted: dict[str, int] = {}
        for content_id in content_ids:
            self.repo.place(content_id, target)
            for digest, length in self.repo.manifest(content_id).values():
                wanted[digest] = length
        progress = ReplicationProgress(bytes_total=sum(wanted.values()))
        target_store = self.locations.open(target)
        digests = sorted(wanted)
        started = time.monotonic()
        # Under a bandwidth limit, copy in steps of about a second's worth, so progress stays fine-grained.
        step = max(1, min(BATCH, self.bandwidth // CHUNK_SIZE)) if self.bandwidth else BATCH
        for start in range(0, len(digests), step):
            group = digests[start:start + step]
            present = self.repo.touch(target, group)
            progress.bytes_done += sum(wanted[d] for d in present)
            missing = [d for d in group if d not in present]

            def copy(digest: str):
                blob, _data = self.fetch(digest, sources)
                target_store.put(digest, blob)
                return digest, len(blob), wanted[digest]

            copied = self._put_and_register(target, copy, missing)
            moved = sum(raw for _, _, raw in copied)
            progress.bytes_done += moved
            progress.bytes_moved += moved
            on_progress(progress)
            if self.bandwidth:
                # Operator's limit on replication traffic: wait until the bytes moved fit it.
                time.sleep(max(0.0, progress.bytes_moved / self.bandwidth - (time.monotonic() - started)))
        if hasattr(target_store, "sync"):
            target_store.sync()
        return progress

    def fetch(self, digest: str, stores: list[str], view: bool = False) -> tuple[bytes, bytes]:
        """A verified copy of a chunk from the first of `stores` that has a good one: (blob, data).
        `view`: data may be a memoryview of blob (a chunk stored uncompressed is not copied).

        An unavailable store (an outage, not a missing or damaged chunk) is passed over like one
        that lacks the chunk; when no store had a copy and one was unavailable, that outage is
        raised (a request answers 503 and may be retried), not ContentUnavailable."""
        problems, outage = [], None
        decode = chunks.decode_view if view else chunks.decode
        for store_id in stores:
            try:
                blob = self.locations.open(store_id).get(digest)
                return blob, decode(blob, digest, store_id)
            except (MissingObject, ChunkCorrupt) as error:
                problems.append(str(error))
            except Exception as error:
                if not store_unavailable(error):
                    raise
                outage = outage or error
        if outage is not None:
            raise outage
        raise ContentUnavailable(f"no readable copy of chunk {digest}: " + "; ".join(problems or ["no stores"]))

    # ---- reading --------------------------------------------------------------------------------------
    def reader(self, content_id: str, stores: list[str]) -> "ContentReader":
        content = self.repo.content(content_id)
        if content is None:
            raise LookupError(f"content {content_id} does not exist")
        return ContentReader(self, content["virtual_size"], self.repo.manifest(content_id), stores)

    # ---- maintenance ------------------------------------------------------------------------------------
    def collect_garbage(self, stale_after: float = DEFAULT_GRACE) -> dict:
        """Drop contents nothing uses, then delete chunks no content in their store references.

        `stale_after`, the grace in seconds: a content still being written and an object no row
        records are kept while younger than it, and, whatever the grace, while they may be a
        live writer's (see _writers_cutoff)."""
        cutoff = self._writers_cutoff(time.time(), stale_after)
        # Before anything goes: a store whose last content is dropped below still gets its strays looked for.
        stores = set(self.repo.store_ids()) | {self.locations.home_store(r) for r in self.locations.settings.regions}
        dropped = 0
        for content_id in self.repo.orphan_contents() + self.repo.stale_writing_contents(cutoff):
            self.repo.discard_content(content_id)
            dropped += 1
        started = time.time()
        deleted = 0
        for store_id, digest in self.repo.garbage_candidates(started):
            store = self.locations.open(store_id)
            if self.repo.delete_if_unreferenced(store_id, digest, started, lambda store=store, digest=digest: store.delete(digest)):
                deleted += 1
        stray_cutoff = min(cutoff, started - IN_PLACE_WRITES) if self.repo.in_place_writers() else cutoff
        return {"contents_dropped": dropped, "chunks_deleted": deleted + self._delete_strays(sorted(stores), stray_cutoff)}

    def _writers_cutoff(self, now: float, grace: float) -> float:
        """What was written before this moment belongs to no live writer: `grace` ago, or before
        the oldest writer that still holds a lease (an operation a worker runs, an upload being
        received) began, whichever is earlier. A writer whose node died is live until its lease
        runs out; after that its half-written content and unrecorded objects are garbage."""
        starts = self.repo.live_writer_starts(now, uploads.LEASE_SECONDS)
        return min([now - grace] + [start - CLOCK_SKEW for start in starts])

    def _delete_strays(self, store_ids: list[str], older_than: float) -> int:
        """Delete objects no row records that were written before `older_than`: what a writer
        killed between storing a chunk and recording it left (a live writer records its chunks
        within seconds of writing them)."""
        deleted = 0
        for store_id in store_ids:
            store = self.locations.open(store_id)
            if not hasattr(store, "delete_stray"):
                continue
            recorded = {digest for _, digest in self.repo.store_rows(store_id)}
            for key in list(store.old_keys(older_than)):
                if key not in recorded and store.delete_stray(
                        key, older_than, lambda key=key: not self.repo.has_chunk_row(store_id, key)):
                    deleted += 1
        return deleted

    def verify(self, repair: bool = True) -> dict:
        """Read every chunk every store should hold; re-copy bad ones from another store.

        A store that cannot be reached (an outage) is reported under `unreachable` with the
        first error, and the rest of its chunks is skipped (counted in `skipped`); the other
        stores are still checked. A damaged chunk whose only other copies are in unreachable
        stores is `unrepaired` (not `lost`): a later pass can repair it."""
        report = {"checked": 0, "damaged": [], "repaired": [], "lost": [], "unrepaired": [], "unreachable": [],
                  "skipped": 0}
        down: set[str] = set()
        for store_id, digest in self.repo.iter_store_rows(doomed=False):
            if store_id in down:
                report["skipped"] += 1
                continue
            try:
                self._verify_chunk(store_id, digest, repair, report)
            except Exception as error:
                if not store_unavailable(error):
                    raise
                down.add(store_id)
                report["skipped"] += 1
                report["unreachable"].append({"store": store_id, "problem": first_line(error)})
        return report

    def _verify_chunk(self, store_id: str, digest: str, repair: bool, report: dict) -> None:
        store = self.locations.open(store_id)
        try:
            chunks.decode(store.get(digest), digest, store_id)
            report["checked"] += 1
            return
        except (MissingObject, ChunkCorrupt) as error:
            report["checked"] += 1
            report["damaged"].append({"store": store_id, "digest": digest, "problem": str(error)})
        if not repair:
            return
        others = [s for s in self.repo.stores_holding(digest) if s != store_id]
        try:
            blob, _ = self.fetch(digest, others)
        except ContentUnavailable:
            report["lost"].append({"store": store_id, "digest": digest})
            return
        except Exception as error:
            if not store_unavailable(error):
                raise
            # No reachable copy now, but one may be in a store that is down: not lost, not repaired.
            report["unrepaired"].append({"store": store_id, "digest": digest,
                                         "problem": first_line(error)})
            return
        store.put(digest, blob)
        report["repaired"].append({"store": store_id, "digest": digest, "from": others})


class ContentReader:
    """A content as a disk image (virtual_size, extents(), read()), so formats can export it."""

    def __init__(self, engine: ContentEngine, virtual_size: int, manifest: dict[int, tuple[str, int]],
                 stores: list[str]) -> None:
        self.engine = engine
        self.virtual_size = virtual_size
        self.manifest = manifest
        self.stores = stores

    def extents(self) -> Iterator[tuple[int, int, bool]]:
        position = 0
        for idx in sorted(self.manifest):
            start = idx * CHUNK_SIZE
            if start > position:
                yield position, start - position, False
            length = min(CHUNK_SIZE, self.virtual_size - start)
            yield start, length, True
            position = start + length
        if position < self.virtual_size:
            yield position, self.virtual_size - position, False

    def chunk(self, idx: int, view: bool = False) -> bytes:
        """Chunk `idx`'s bytes (`view`: maybe a memoryview, see ContentEngine.fetch)."""
        entry = self.manifest.get(idx)
        size = min(CHUNK_SIZE, self.virtual_size - idx * CHUNK_SIZE)
        if entry is None:
            return bytes(size)
        _blob, data = self.engine.fetch(entry[0], self.stores, view)
        return data

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.virtual_size - offset))
        parts = []
        position = offset
        end = offset + length
        while position < end:
            idx = position // CHUNK_SIZE
            data = self.chunk(idx)
            within = position - idx * CHUNK_SIZE
            piece = data[within:within + (end - position)]
            parts.append(piece)
            position += len(piece)
        return b"".join(parts)

    def pieces(self, start: int, end: int) -> Iterator[memoryview]:
        """The disk's bytes [start, end) for streaming out, as views of at most one chunk each
        (nothing is copied or joined): chunks are fetched and verified FETCH_AHEAD at a time on
        the engine's threads while the caller sends the previous ones; holes are zeros that no
        store is asked for."""
        end = min(end, self.virtual_size)
        if start >= end:
            return
        window: deque = deque()
        upcoming = iter(range(start // CHUNK_SIZE, (end - 1) // CHUNK_SIZE + 1))
        try:
            while True:
                for idx in upcoming:
                    entry = self.manifest.get(idx)
                    window.append((idx, None if entry is None else self.engine._pool.submit(self.chunk, idx, True)))
                    if len(window) >= FETCH_AHEAD:
                        break
                if not window:
                    break
                idx, fetching = window.popleft()
                base = idx * CHUNK_SIZE
                length = min(CHUNK_SIZE, self.virtual_size - base)
                data = memoryview(fetching.result()) if fetching is not None else _ZEROS[:length]
                yield data[max(start, base) - base:min(end, base + length) - base]
        finally:
            for _idx, fetching in window:
                if fetching is not None:
                    fetching.cancel()

    def close(self) -> None:
        pass
