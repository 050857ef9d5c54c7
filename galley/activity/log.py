"""The activity log: entries are queued by the request that made them and written by one thread.

Why a queue and not an insert per request: recording happens after every write and every refusal,
and an insert on the request's own path would cost it a database transaction (on SQLite a
synchronous commit, and the one write lock every other writer waits for). The writer thread
takes whatever has queued up and appends it in one transaction, so a burst of requests costs one
commit, and a flood of refused anonymous requests cannot slow anyone down: the queue is bounded
(CAPACITY entries); past that, entries are dropped, counted in `dropped` and logged.

What that costs, plainly: an entry reaches the database a moment after its response (a reader on
this node first waits for what is queued here, `flush()`, so it reads its own writes; another
node sees it as soon as it is written), and entries still queued when the process is killed are
lost (a clean stop writes them: `stop()`); while the database is out of reach they stay queued
(within the bound) and are written once it is back. Recording never fails a request: errors are logged.

Retention: entries older than `retention_days` are deleted when the writer starts and every
`prune_seconds` after (0 days: kept forever). Nothing else deletes or changes an entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace
from datetime import timedelta

from ..domain.resource import iso, utc_now
from ..store.activity_store import ActivityStore
from ..store.outage import database_unavailable
from .entry import Entry, EventQuery

log = logging.getLogger("galley.activity")

CAPACITY = 10_000
BATCH = 500
PRUNE_SECONDS = 3600.0
RETRY_SECONDS = 1.0


class ActivityLog:
    def __init__(self, store: ActivityStore, retention_days: int = 90, *, capacity: int = CAPACITY,
                 prune_seconds: float = PRUNE_SECONDS) -> None:
        self.store = store
        self.retention_days = retention_days
        self.capacity = capacity
        self.prune_seconds = prune_seconds
        self.dropped = 0
        self._pending: deque[Entry] = deque()
        self._queued = 0  # entries ever queued, and of those written (or given up on)
        self._done = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._retry_at = 0.0  # after a database outage, when to try writing again

    # -- recording (any thread; never blocks, never raises) --------------------------------------
    def record(self, entry: Entry) -> None:
        with self._cond:
            if len(self._pending) >= self.capacity:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning("activity log queue full (%d entries): %d entries dropped so far",
                                self.capacity, self.dropped)
                return
            self._pending.append(entry)
            self._queued += 1
            self._cond.notify_all()
        if self._thread is None and not self._stopping:
            self.start()

    # -- the writer -----------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="activity-log", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued and end the writer."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None
        self._write_pending()  # anything recorded after the writer ended

    def flush(self, timeout: float = 5.0) -> None:
        """Until what was recorded before this call has been written (or `timeout` passes)."""
        with self._cond:
            target, running = self._queued, self._thread is not None and self._thread.is_alive()
            if running:
                self._cond.wait_for(lambda: self._done >= target, timeout)
                return
        self._write_pending()

    def _run(self) -> None:
        next_prune = time.monotonic()
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    if now >= next_prune or (self._pending and now >= self._retry_at):
                        break
                    wake = min(next_prune, self._retry_at) if self._pending else next_prune
                    self._cond.wait(max(0.0, wake - now))
                stopping = self._stopping
            self._write_pending()
            if time.monotonic() >= next_prune:
                try:
                    self.prune()
                except Exception:  # noqa: BLE001 - the writer must go on
                    log.exception("activity log: pruning failed")
                next_prune = time.monotonic() + self.prune_seconds
            if stopping:
                return

    def _write_pending(self) -> None:
        while True:
            with self._cond:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            if not batch:
                return
            written = iso(utc_now())
            try:
                with self.store.write() as tx:
                    tx.append([replace(e, submission_timestamp=written) for e in batch])
            except Exception as error:  # noqa: BLE001 - a lost entry must not stop the writer or a request
                if database_unavailable(error) and not self._stopping:
                    with self._cond:  # kept, in order, for when the database is back
                        self._pending.extendleft(reversed(batch))
                        self._retry_at = time.monotonic() + RETRY_SECONDS
                        waiting = len(self._pending)
                    log.warning("activity log: the database is unavailable; %d entries wait for it", waiting)
                    return
                log.exception("activity log: %d entries could not be written", len(batch))
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    # -- reading and retention --------------------------------------------------------------------
    def query(self, query: EventQuery, limit: int, after: tuple[str, str] | None = None) -> list[Entry]:
        """A page of entries, newest first; what this node recorded so far is included."""
        self.flush()
        with self.store.read() as tx:
            return tx.page(query, limit, after)

    def prune(self) -> int:
        """Delete the entries older than the retention period; how many went."""
        if self.retention_days <= 0:
            return 0
        cutoff = iso(utc_now() - timedelta(days=self.retention_days))
        with self.store.write() as tx:
            removed = tx.delete_before(cutoff)
        if removed:
            log.info("activity log: %d entries older than %d days removed", removed, self.retention_days)
        return removed
