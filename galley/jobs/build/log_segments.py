"""A build's customization.log in its region's object store, so that any node can serve `logs`
(and `logs --follow`) while the build runs on another.

The builder writes the log to its work folder as before; a LogShipper copies what was appended
to the store every SHIP_SECONDS, and at once before the run's final state is recorded, so a
follower that sees the run ended has every line. The log is cut in fixed segments: segment n
holds bytes [n × SEGMENT_BYTES, (n + 1) × SEGMENT_BYTES), and the last, partial one is rewritten
as it fills, so a reader finds any offset with one GET. Segments live in the region's first zone
under the slot `logs` (a store of their own: garbage collection sweeps only chunk slots), keyed
by a digest of the template id; a new run deletes the last run's segments first.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from ...content.object_store import MissingObject, ObjectStore

log = logging.getLogger("galley.jobs.build")
SEGMENT_BYTES = 64 * 1024
SHIP_SECONDS = 1.0
SLOT = "logs"


def store_of(locations, region: str) -> ObjectStore:
    return locations.open(f"{region}/{locations.settings.zones[0]}/{SLOT}")


def segment_key(template_id: str, number: int) -> str:
    digest = hashlib.sha256(template_id.lower().encode()).hexdigest()[:32]
    return f"buildlog-{digest}-{number:07d}"


class LogShipper:
    def __init__(self, store: ObjectStore, template_id: str, path: Path) -> None:
        self.store = store
        self.template_id = template_id
        self.path = path
        self._full_segments = 0  # segments shipped whole: never written again
        self._shipped_bytes = 0  # bytes of the file already in the store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Drop the last run's segments, then ship as the log grows."""
        number = 0
        while self.store.exists(segment_key(self.template_id, number)):
            self.store.delete(segment_key(self.template_id, number))
            number += 1
        self._thread = threading.Thread(target=self._loop, name="galley-build-log", daemon=True)
        self._thread.start()

    def flush(self) -> None:
        """Copy what was appended since the last flush (rewriting the partial last segment)."""
        with self._lock:
            try:
                with open(self.path, "rb") as f:
                    f.seek(self._full_segments * SEGMENT_BYTES)
                    pending = f.read()
            except FileNotFoundError:
                return
            total = self._full_segments * SEGMENT_BYTES + len(pending)
            if total == self._shipped_bytes:
                return
            for start in range(0, len(pending), SEGMENT_BYTES):
                piece = pending[start:start + SEGMENT_BYTES]
                self.store.put(segment_key(self.template_id, self._full_segments), piece)
                if len(piece) < SEGMENT_BYTES:
                    break
                self._full_segments += 1
            self._shipped_bytes = total

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush_quietly()

    def _loop(self) -> None:
        while not self._stop.wait(SHIP_SECONDS):
            self.flush_quietly()

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as error:  # noqa: BLE001 - the local log is complete; the next flush retries
            log.warning("could not copy the build log of %s to its store: %r", self.template_id, error)


def read(store: ObjectStore, template_id: str, offset: int, limit: int) -> tuple[bytes, int] | None:
    """Up to `limit` bytes of the log from `offset`, and the log's size now; None when the store
    holds no log of this template."""
    number = offset // SEGMENT_BYTES
    pieces: list[bytes] = []
    taken = 0
    while True:
        try:
            segment = store.get(segment_key(template_id, number))
        except MissingObject:
            if number == 0:
                return None
            return b"".join(pieces), offset + taken if pieces else number * SEGMENT_BYTES
        start = offset - number * SEGMENT_BYTES if not pieces else 0
        piece = segment[max(0, start):][:limit - taken]
        pieces.append(piece)
        taken += len(piece)
        if len(segment) < SEGMENT_BYTES:  # the last segment: the log ends here
            return b"".join(pieces), number * SEGMENT_BYTES + len(segment)
        number += 1
        if taken >= limit:
            return b"".join(pieces), _size_from(store, template_id, number)


def _size_from(store: ObjectStore, template_id: str, number: int) -> int:
    """The log's size, looking forward from segment `number` (only past a read's limit)."""
    while store.exists(segment_key(template_id, number)):
        number += 1
    if number == 0:
        return 0
    return (number - 1) * SEGMENT_BYTES + len(store.get(segment_key(template_id, number - 1)))
