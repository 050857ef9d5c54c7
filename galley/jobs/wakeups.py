"""Waking the workers of other nodes when work is queued, through PostgreSQL's LISTEN/NOTIFY.

A node's own workers are woken in-process the moment a write commits; without this, a worker on
another node would find the work only at its next poll (`worker_poll_seconds`), so a write sent
to an api-only node, or picked up elsewhere, waited up to that long. On SQLite (one machine)
nothing is sent: the nodes sharing a file still find work by polling.

A notice is only a hint to look now: losing one (a dropped connection, a restart) delays work by
at most one poll, never loses it, since the queue itself is the operations table.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import psycopg
from sqlalchemy import Engine, text

log = logging.getLogger("galley.jobs")
CHANNEL = "galley_jobs"
RECONNECT_SECONDS = 2.0
STOP_CHECK_SECONDS = 0.25  # how soon a stopping node notices, while it waits for notices


class Wakeups:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.enabled = engine.dialect.name == "postgresql"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def announce(self) -> None:
        """Tell every listening node that work may be waiting (a no-op off PostgreSQL)."""
        if not self.enabled:
            return
        try:
            with self.engine.connect() as connection:
                connection.execute(text(f"NOTIFY {CHANNEL}"))
                connection.commit()
        except Exception as error:  # a hint only: the other nodes' next poll finds the work
            log.debug("could not announce queued work: %s", error)

    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever any node announces work, from a thread of its own, until stop()."""
        if not self.enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._listen, args=(wake,), name="galley-wakeups", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _listen(self, wake: Callable[[], None]) -> None:
        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    wake()  # work announced while this node was not listening
                    while not self._stop.is_set():
                        if any(True for _ in connection.notifies(timeout=STOP_CHECK_SECONDS, stop_after=1)):
                            wake()
            except Exception as error:
                if self._stop.is_set():
                    return
                log.warning("job wake-ups from other nodes paused (%s); polling meanwhile", error)
                self._stop.wait(RECONNECT_SECONDS)
