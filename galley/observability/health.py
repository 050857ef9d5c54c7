"""Liveness and readiness of this node.

Alive: the process answers (nothing is touched). Ready: the database answers a bounded query,
every region's home store is reachable (a folder: a probe file made and removed; S3: an
object's HEAD, which needs the endpoint, the credentials and the bucket's permissions), and the
node is not draining at shutdown. Each check is given CHECK_SECONDS; one that does not answer in
time is failed, never waited for. Probes within REUSE_SECONDS of a check share its outcome.

Answers name checks and their outcome only: never a store's URL, a path, or an error's message
(which could hold either); the server's log has the details.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import tempfile
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from ..content.object_store import FolderStore

log = logging.getLogger("galley.health")
CHECK_SECONDS = 3.0
REUSE_SECONDS = 1.0
PROBE_KEY = "readyz-probe"
RETRY_AFTER_SECONDS = 5


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, dict] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"status": "ready" if self.ready else "unavailable", "checks": self.checks}


class Health:
    def __init__(self, engine: Engine, locations, regions: tuple[str, ...]) -> None:
        self.engine = engine
        self.locations = locations
        self.regions = regions
        self.draining = threading.Event()
        # Checks run here, so a hung store or database never holds a request thread for long.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="galley-readyz")
        # One evaluation at a time, reused for REUSE_SECONDS: load balancers probing every node
        # often must not pile checks up behind a store that hangs.
        self._lock = threading.Lock()
        self._last: tuple[float, dict] = (float("-inf"), {})

    def readiness(self) -> Readiness:
        with self._lock:
            at, checks = self._last
            if time.monotonic() - at > REUSE_SECONDS:
                checks = self._check_all()
                self._last = (time.monotonic(), checks)
        result = Readiness(ready=all(c["status"] == "ok" for c in checks.values()), checks=dict(checks))
        if self.draining.is_set():
            result.ready = False
            result.checks["draining"] = {"status": "failed", "reason": "the node is shutting down"}
        return result

    def _check_all(self) -> dict[str, dict]:
        checks = {"database": self._database, **{f"store:{region}": self._store_check(region)
                                                 for region in self.regions}}
        started = {name: (time.perf_counter(), self._pool.submit(check)) for name, check in checks.items()}
        results: dict[str, dict] = {}
        deadline = time.monotonic() + CHECK_SECONDS
        for name, (at, future) in started.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = {"status": "ok", "ms": round((time.perf_counter() - at) * 1000, 1)}
            except concurrent.futures.TimeoutError:
                results[name] = {"status": "failed", "reason": f"no answer in {CHECK_SECONDS:g} s"}
            except Exception as error:  # noqa: BLE001 - any failure makes the node unready
                log.warning("readiness check %s failed: %r", name, error)
                results[name] = {"status": "failed", "reason": type(error).__name__}
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _database(self) -> None:
        with self.engine.connect() as connection:
            connection.info["write"] = None
            connection.execute(text("SELECT 1")).scalar_one()

    def _store_check(self, region: str):
        def check() -> None:
            store = self.locations.open(self.locations.home_store(region))
            if isinstance(store, FolderStore):
                store.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=store.root, prefix=f".{PROBE_KEY}-"):
                    pass  # written and removed: the folder takes new files
            else:
                store.exists(PROBE_KEY)
        return check
