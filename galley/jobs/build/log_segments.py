"""A build's customization.log in its region's object store, so that any node can serve `logs`
(and `logs --follow`) while the build runs on another.

The builder writes the log to its work folder as before; a LogShipper copies what was appended
to the store every SHIP_SECONDS, and at once before the run's final state is recorded, so a
follower that sees the run ended has every line. The log is cut in fixed segments: segment n
holds bytes [n × SEGMENT_BYTES, (n + 1) × SEGMENT_BYTES), and the last, partial one is rewritten
as it fills, so a reader finds any offset with one GET. Segments live in the region's first zone
under the slot `logs` (a store of their own: chunk garbage collection never looks there), keyed
by a digest of the template id. A new run deletes the last run's segments first, deleting a
template deletes its log (forget), and `galley store gc` deletes what a template's deletion could
not (its store was unreachable, the node died): segments whose template no longer exists (sweep).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path
from typing import Callable, Iterable

from ...content.object_store import MissingObject, ObjectStore
from ...domain.ids import IMAGE_TEMPLATE_TYPE

log = logging.getLogger("galley.jobs.build")
SEGMENT_BYTES = 64 * 1024
SHIP_SECONDS = 1.0
SLOT = "logs"


def store_of(locations, region: str) -> ObjectStore:
    return locations.open(f"{region}/{locations.settings.zones[0]}/{SLOT}")


def segment_key(template_id: str, number: int) -> str:
    return f"buildlog-{_digest(template_id)}-{number:07d}"


def _digest(template_id: str) -> str:
    return hashlib.sha256(template_id.lower().encode()).hexdigest()[:32]


_SEGMENT_KEY = re.compile(r"buildlog-([0-9a-f]{32})-[0-9]{7}")


def drop(store: ObjectStore, template_id: str) -> int:
    """Delete a template's log (its segments, from the first on); how many segments went."""
    number = 0
    while store.exists(segment_key(template_id, number)):
        store.delete(segment_key(template_id, number))
        number += 1
    return number


def forget(locations, template) -> None:
    """Delete a deleted template's log. A store that cannot be reached now keeps it until
    `galley store gc` sweeps it."""
    try:
        drop(store_of(locations, template.location), template.id)
    except Exception as error:  # noqa: BLE001 - the template is gone either way; gc sweeps later
        log.warning("could not delete the build log of %s from its store: %r", template.id, error)


def sweep(locations, regions: Iterable[str], existing_templates: Callable[[], Iterable[str]]) -> int:
    """Delete, in each region's log store, the segments of templates that no longer exist; how
    many. `existing_templates()` is read after the stores are listed, so a template made meanwhile
    (whose segments the listing cannot hold) is never mistaken for a deleted one."""
    stores = {store.url: store for store in (store_of(locations, region) for region in regions)}
    listed = [(store, [key for key in store.keys() if _SEGMENT_KEY.fullmatch(key)]) for store in stores.values()]
    kept = {_digest(template_id) for template_id in existing_templates()}
    deleted = 0
    for store, keys in listed:
        for key in keys:
            if _SEGMENT_KEY.fullmatch(key).group(1) not in kept:
                store.delete(key)
                deleted += 1
    if deleted:
        log.info("deleted %d build log segment(s) of deleted image templates", deleted)
    return deleted


def sweep_deleted_templates(sql, locations) -> int:
    """`galley store gc`'s part: sweep every configured region's log store against the image
    templates the database holds; how many segments were deleted."""
    def existing() -> list[str]:
        with sql.read() as tx:
            return [template.id for template in tx.all_of_type(IMAGE_TEMPLATE_TYPE)]

    return sweep(locations, locations.settings.regions, existing)


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
        drop(self.store, self.template_id)
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
