"""A run's lastRunStatus as the build moves on, and the watch that notices a cancel request."""

from __future__ import annotations

import threading

from ...domain.image_template import CANCELING, RUNNING
from ...domain.resource import SUCCEEDED, iso, utc_now
from ..context import JobContext

SUCCEEDED_RUN, FAILED_RUN, CANCELED_RUN = "Succeeded", "Failed", "Canceled"
WATCH_SECONDS = 1.0


def current(ctx: JobContext, template_id: str) -> dict | None:
    with ctx.sql.read() as tx:
        template = tx.get(template_id)
    return None if template is None else dict(template.properties.get("lastRunStatus") or {})


def enter_phase(ctx: JobContext, template_id: str, sub_state: str, message: str = "") -> None:
    """runSubState moves on; a Canceling run stays Canceling until the build has stopped."""
    with ctx.sql.write() as tx:
        template = tx.get(template_id)
        if template is None:
            return
        status = dict(template.properties.get("lastRunStatus") or {})
        if status.get("runState") not in (RUNNING, CANCELING):
            return
        status["runSubState"] = sub_state
        if status["runState"] == RUNNING:
            status["message"] = message
        template.properties["lastRunStatus"] = status
        tx.save(template)


def finish(ctx: JobContext, template_id: str, run_state: str, message: str) -> None:
    """The run has ended: its final state, and every cancel that waited on it is done."""
    now = iso(utc_now())
    with ctx.sql.write() as tx:
        template = tx.get(template_id)
        if template is not None:
            status = dict(template.properties.get("lastRunStatus") or {})
            status.update({"runState": run_state, "message": message, "endTime": now})
            status.pop("runSubState", None)
            template.properties["lastRunStatus"] = status
            tx.save(template)
        for cancel in tx.open_operations(template_id, "cancel"):
            cancel.status = SUCCEEDED
            cancel.end_time = now
            tx.save_operation(cancel)


class CancelWatch:
    """While the build runs: keep the run's lease alive and set `event` once a cancel is asked
    for (lastRunStatus Canceling) or the template is gone."""

    def __init__(self, ctx: JobContext, template_id: str) -> None:
        self.ctx = ctx
        self.template_id = template_id
        self.event = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="galley-build-watch", daemon=True)

    def __enter__(self) -> "CancelWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check(self) -> bool:
        """True when a cancel has been asked for (also checked right now, not only by the watch)."""
        if not self.event.is_set() and self._cancel_requested():
            self.event.set()
        return self.event.is_set()

    def _cancel_requested(self) -> bool:
        status = current(self.ctx, self.template_id)
        return status is None or status.get("runState") == CANCELING

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self.ctx.heartbeat()
                self.check()
            except Exception:  # a database hiccup: try again on the next tick
                continue
