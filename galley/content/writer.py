"""Writing one content chunk by chunk, as the data arrives (an ingest, a streamed upload).

    writer = engine.writer(store_id, virtual_size)
    writer.add(idx, data)        # 1 MiB chunks in any order; all-zero chunks are not stored
    writer.finish((key, lun))    # or writer.abort()

Chunks are hashed, compressed and stored in batches on the engine's threads while the caller
produces the next ones. Memory stays bounded for the whole process: every chunk handed over
holds one slot of the engine's in-flight budget until its batch is stored, so any number of
concurrent writers together hold at most `IN_FLIGHT_CHUNKS` MiB of chunk data (plus one chunk
each that is waiting for a slot).

Until `finish` nothing is visible to readers: the content is in state "writing". `abort`, a
failure or a crash leaves it so; its rows are dropped (by abort at once, else by
`collect_garbage` once it is older than `stale_after`); `abort` also deletes at once the chunks
it stored that nothing else references, and after a crash they are garbage for the next collection. A long upload calls `keep_alive` so a collection does not take it for abandoned.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, wait

from . import chunks

BATCH = 16  # chunks hashed, recorded (one transaction) and stored together
IN_FLIGHT_CHUNKS = 48  # the engine's budget, shared by all its writers
REMEMBER_STORED = 65536  # past this many (64 GiB), an aborted write's chunks are left to GC


class ContentWriter:
    def __init__(self, engine, store_id: str, virtual_size: int) -> None:
        self.engine = engine
        self.store_id = store_id
        self.store = engine.locations.open(store_id)
        self.virtual_size = virtual_size
        self.content_id = engine.repo.new_content(virtual_size, chunks.CHUNK_SIZE, store_id)
        self._batch: list[tuple[int, bytes]] = []
        self._writing: deque[Future] = deque()
        self._stored: list[str] = []  # digests this writer stored first: an abort deletes them at once
        self._closed = False

    def add(self, idx: int, data: bytes) -> None:
        if chunks.is_zero(data):
            return
        budget: threading.Semaphore = self.engine.in_flight
        if not budget.acquire(blocking=False):
            # Hand over what this writer holds before waiting, so the budget always drains.
            self._flush()
            budget.acquire()
        self._batch.append((idx, data))
        if len(self._batch) >= BATCH:
            self._flush()

    def keep_alive(self) -> None:
        self.engine.repo.keep_writing(self.content_id)

    def finish(self, attach: tuple[str, int] | None, virtual_size: int | None = None) -> str:
        """Store what is left, make it durable and, in one transaction, make the content ready
        and the disk `attach` names point at it."""
        try:
            self._flush()
            self._drain()
            if hasattr(self.store, "sync"):
                self.store.sync()
            if virtual_size is not None and virtual_size != self.virtual_size:
                self.engine.repo.resize(self.content_id, virtual_size)
                self.virtual_size = virtual_size
            self.engine.repo.finish_content(self.content_id, attach)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.content_id

    def abort(self) -> None:
        """Drop the content; nothing it wrote becomes visible (its chunks are left to GC)."""
        if self._closed:
            return
        self._closed = True
        if self._batch:
            self.engine.in_flight.release(len(self._batch))
            self._batch = []
        wait(list(self._writing))
        self._writing.clear()
        self.engine.repo.discard_content(self.content_id)
        self.engine.drop_if_unreferenced(self.store_id, self._stored)

    # ---- internals ----------------------------------------------------------------------------
    def _flush(self) -> None:
        self._reap()
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._writing.append(self.engine.batch_writer.submit(self._write, batch))

    def _write(self, batch: list[tuple[int, bytes]]) -> None:
        try:
            stored = self.engine.write_batch(self.content_id, self.store_id, self.store, batch)
            if len(self._stored) < REMEMBER_STORED:
                self._stored.extend(stored)
        finally:
            self.engine.in_flight.release(len(batch))

    def _reap(self) -> None:
        """Raise the failure of a batch that already ended (a full store stops the writer early)."""
        while self._writing and self._writing[0].done():
            self._writing.popleft().result()

    def _drain(self) -> None:
        while self._writing:
            self._writing.popleft().result()
