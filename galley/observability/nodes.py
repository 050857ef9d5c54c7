"""This process as a node of the installation: its roles, and its row in the nodes table kept
fresh by a heartbeat, so that `galley status` (GET /providers/Galley.Operations/nodes) shows every
node, whether it is alive, and the work each holds.

Roles (`galley serve --role`):
  api      serves the ARM API (every route)
  worker   claims jobs: replication, disk and image content, garbage collection, VM operations
  builder  runs image template builds
Every node serves /healthz, /readyz and /metrics whatever its roles.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone

from .. import __version__
from ..store.node_store import NodeRecord, NodeStore

log = logging.getLogger("galley.nodes")
API, WORKER, BUILDER = "api", "worker", "builder"
ROLES = (API, WORKER, BUILDER)
HEARTBEAT_SECONDS = 5.0
# A node whose heartbeat is older than this is shown as lost (it died, or cannot reach the database).
LOST_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


def parse_roles(values: list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """`--role api,worker` or `--role all` (each value may be a comma list); none given is all."""
    words = [w.strip().lower() for v in (values or ()) for w in v.split(",") if w.strip()]
    if not words or "all" in words:
        return frozenset(ROLES)
    unknown = sorted(set(words) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role {', '.join(unknown)}: use {', '.join(ROLES)} or all")
    return frozenset(words)


def ordered(roles) -> tuple[str, ...]:
    return tuple(r for r in ROLES if r in roles)


class Node:
    """This process's registration: made at start, beaten every HEARTBEAT_SECONDS, marked stopped."""

    def __init__(self, store: NodeStore, name: str, roles: frozenset[str], url: str | None) -> None:
        self.store = store
        self.id = uuid.uuid4().hex[:16]
        self.name = name
        self.roles = roles
        self.url = url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        now = time.time()
        self.store.register(NodeRecord(self.id, self.name, ordered(self.roles), self.url, __version__, now, now, None))
        self._thread = threading.Thread(target=self._beat, name="galley-node-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            try:
                self.store.stopped(self.id, time.time())
            except Exception as error:  # noqa: BLE001 - the database may be gone; the row then ages out
                log.warning("could not mark node %s stopped: %r", self.name, error)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.store.beat(self.id, time.time())
            except Exception as error:  # noqa: BLE001 - keep beating; readiness reports the database
                log.warning("node heartbeat failed: %r", error)


def describe(store: NodeStore, now: float | None = None) -> list[dict]:
    """Every registered node with its state and the operations its workers hold (ARM-style items)."""
    now = now or time.time()
    held: dict[str, list[dict]] = {}
    for operation in store.held_operations(now):
        held.setdefault(operation.node_id, []).append({
            "operationId": operation.operation_id, "kind": f"{operation.resource_type}/{operation.action}",
            "resourceId": operation.resource_id, "since": operation.since})
    items = []
    for node in store.all():
        age = max(0.0, now - node.heartbeat_at)
        state = "Stopped" if node.stopped_at else ("Lost" if age > LOST_AFTER_SECONDS else "Running")
        items.append({
            "id": f"/providers/Galley.Operations/nodes/{node.id}", "name": node.id,
            "type": "Galley.Operations/nodes",
            "properties": {"nodeName": node.name, "roles": list(node.roles), "url": node.url,
                           "version": node.version, "state": state,
                           "startedAt": _iso(node.started_at), "lastHeartbeat": _iso(node.heartbeat_at),
                           "heartbeatAgeSeconds": round(age, 1), "work": held.get(node.id, [])}})
    return items


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
