"""A worker thread that claims queued operations from the database and finishes them.

Claims are leases: if a process dies mid-operation, the lease expires and any worker (after a
restart, or another process on the same database) takes the operation up again.
"""

from __future__ import annotations

import logging
import threading
import uuid

from ..domain.resource import FAILED, SUCCEEDED, iso, utc_now
from ..store.sql_store import SqlStore
from . import handlers

log = logging.getLogger("galley.jobs")
LEASE_SECONDS = 30.0


class Worker:
    def __init__(self, store: SqlStore, poll_seconds: float = 0.5) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="galley-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_pending(self) -> int:
        """Finish every queued operation now; returns how many ran."""
        count = 0
        while self._run_one():
            count += 1
        return count

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pending()
            except Exception:  # keep serving; the operation stays queued and is retried
                log.exception("worker pass failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _run_one(self) -> bool:
        with self.store.write() as tx:
            operation = tx.claim_operation(self.owner, LEASE_SECONDS)
        if operation is None:
            return False
        try:
            with self.store.write() as tx:
                handlers.finish(tx, operation)
                operation.status = SUCCEEDED
                operation.end_time = iso(utc_now())
                tx.save_operation(operation)
        except Exception as error:
            log.exception("operation %s failed", operation.id)
            self._fail(operation, error)
        return True

    def _fail(self, operation, error: Exception) -> None:
        with self.store.write() as tx:
            resource = tx.get(operation.resource_id)
            if resource is not None:
                resource.provisioning_state = FAILED
                tx.save(resource)
            operation.status = FAILED
            operation.end_time = iso(utc_now())
            operation.error = {"code": "InternalOperationError", "message": str(error)}
            tx.save_operation(operation)
