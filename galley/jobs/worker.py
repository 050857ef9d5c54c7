"""Worker threads that claim queued operations from the database and finish them.

Claims are leases that a running handler renews: if a process dies mid-operation, the lease
expires and any worker (after a restart, or another process on the same database) takes the
operation up again, and content steps resume from what they had recorded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from ..content.engine import ContentEngine
from ..content.store_outage import store_unavailable
from ..domain.resource import FAILED, SUCCEEDED, Operation, iso, utc_now
from ..store.outage import database_unavailable, first_line
from ..store.sql_store import BUILD_ACTIONS, SqlStore

# Actions whose failure says nothing about the resource's provisioning: a failed build is
# reported in the template's lastRunStatus, a failed run-command in its own result.
_KEEP_PROVISIONING = BUILD_ACTIONS + ("runCommand",)
from . import handlers
from .context import JobContext

log = logging.getLogger("galley.jobs")
LEASE_SECONDS = 10.0


class Worker:
    """Claims operations and finishes them with `handler`: by default every kind but image
    template runs; a second Worker with `actions=BUILD_ACTIONS` and the build handler runs those."""

    def __init__(self, store: SqlStore, content: ContentEngine, poll_seconds: float = 0.5,
                 threads: int = 2, *, actions: tuple[str, ...] | None = None,
                 handler: Callable[[JobContext, Operation], None] = handlers.finish,
                 name: str = "worker", extras: dict | None = None,
                 types: tuple[str, ...] | None = None, owner: str | None = None) -> None:
        self.store = store
        self.content = content
        self.poll_seconds = poll_seconds
        self.threads = threads
        self.actions = actions
        self.types = types  # resource types whose every operation this worker takes (VMs)
        self.handler = handler
        self.name = name
        self.extras = extras if extras is not None else {}  # what the handler needs besides store/content
        # Its claims' lease owner: the node's id and this worker's name under `galley serve`.
        self.owner = owner or f"{name}-{uuid.uuid4().hex[:12]}"
        self._wake = threading.Condition()
        self._pending_wakes = 0
        # Notified each time this worker ends an operation (whatever its outcome): requests that
        # wait for their operation (wait_until) re-check then, instead of polling the database.
        self._ended = threading.Condition()
        self._ended_count = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """Whether this worker's threads are claiming operations (start() called, not stopped)."""
        return bool(self._threads) and not self._stop.is_set()

    def wake(self) -> None:
        with self._wake:
            self._pending_wakes += 1
            self._wake.notify_all()

    def wait_until(self, done: Callable[[], bool], timeout: float, recheck: float | None = None) -> bool:
        """Wait up to `timeout` seconds for `done()` (a read of the database) to hold; it is
        checked now, again each time this worker ends an operation, and, with `recheck`, at least
        every `recheck` seconds (for work another node's worker does: that sends no notice here).
        True if it held in time; `done()` is checked a last time when the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            with self._ended:
                seen = self._ended_count
            if done():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._ended:
                self._ended.wait_for(lambda: self._ended_count != seen, min(left, recheck or left))
            if time.monotonic() >= deadline:
                return done()  # a last look, for work that another process finished

    def _operation_ended(self) -> None:
        with self._ended:
            self._ended_count += 1
            self._ended.notify_all()

    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"galley-{self.name}-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=10)

    def run_pending(self) -> int:
        """Finish every queued operation now, in the caller's thread; returns how many ran."""
        count = 0
        while self._run_one():
            count += 1
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pending()
            except Exception as error:  # keep serving; the operation stays queued and is retried
                if database_unavailable(error):
                    log.warning("%s: the database is unavailable, retrying: %s", self.name, first_line(error))
                else:
                    log.exception("worker pass failed")
            with self._wake:
                if not self._pending_wakes:
                    self._wake.wait(self.poll_seconds)
                self._pending_wakes = 0

    def _run_one(self) -> bool:
        with self.store.write() as tx:
            operation = tx.claim_operation(self.owner, LEASE_SECONDS, self.actions, self.types)
        if operation is None:
            return False
        last_renewal = [time.monotonic()]
        last_try = [time.monotonic()]

        def heartbeat() -> None:
            now = time.monotonic()
            if now - last_renewal[0] <= LEASE_SECONDS / 3 or now - last_try[0] < 1.0:
                return
            last_try[0] = now
            try:
                with self.store.write() as tx:
                    tx.renew_lease(operation.id, self.owner, LEASE_SECONDS)
            except Exception as error:
                # A database restart of a few seconds must not abort a long copy: the lease still
                # holds a while. Once it may run out (another worker could claim it), stop.
                if not database_unavailable(error) or now - last_renewal[0] > LEASE_SECONDS * 2 / 3:
                    raise
                log.warning("%s: could not renew the lease of operation %s (%s), still held for %.0f s",
                            self.name, operation.id, first_line(error), LEASE_SECONDS - (now - last_renewal[0]))
                return
            last_renewal[0] = time.monotonic()

        context = JobContext(self.store, self.content, self.content.locations, heartbeat, **self.extras)
        try:
            self.handler(context, operation)
            with self.store.write() as tx:
                operation.status = SUCCEEDED
                operation.end_time = iso(utc_now())
                tx.save_operation(operation)
        except Exception as error:
            outage = "database" if database_unavailable(error) else "object store" if store_unavailable(error) else None
            if outage:
                # Not the operation's fault: it stays queued, and once its lease runs out a worker
                # (this one or another node's) takes it up again from what its steps recorded.
                log.warning("operation %s (%s %s) interrupted, the %s is unavailable (%s): it is "
                            "taken up again when its lease runs out", operation.id, operation.action,
                            operation.resource_id, outage, first_line(error))
                return True
            log.warning("operation %s (%s %s) failed: %s", operation.id, operation.action,
                        operation.resource_id, error)
            self._fail(operation, error)
        finally:
            self._operation_ended()
        return True

    def _fail(self, operation, error: Exception) -> None:
        with self.store.write() as tx:
            resource = tx.get(operation.resource_id)
            if resource is not None and operation.action not in _KEEP_PROVISIONING:
                resource.provisioning_state = FAILED
                tx.save(resource)
            operation.status = getattr(error, "operation_status", FAILED)
            operation.end_time = iso(utc_now())
            operation.error = {"code": getattr(error, "code", type(error).__name__), "message": str(error)}
            tx.save_operation(operation)
