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

from .. import __version__, uploads
from ..store.node_store import NodeRecord, NodeStore

log = logging.getLogger("galley.nodes")
API, WORKER, BUILDER = "api", "worker", "builder"
ROLES = (API, WORKER, BUILDER)
HEARTBEAT_SECONDS = 5.0
# A node whose heartbeat is older than this is shown as lost (it died, or cannot reach the database).
LOST_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS
# How long a look at which roles are alive is reused (answers ask it on every quick write).
LIVE_ROLES_SECONDS = 2.0


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
        self.process = uploads.this_process()  # the owner of the upload leases it takes
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live_roles: tuple[float, frozenset[str]] = (float("-inf"), frozenset())

    def start(self) -> None:
        now = time.time()
        self.store.register(NodeRecord(self.id, self.name, ordered(self.roles), self.url, __version__, now, now, None,
                                         self.process))
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

    def role_alive(self, role: str) -> bool:
        """Whether a node with `role` (this one or another) is running and beat lately; the
        nodes table is read at most every LIVE_ROLES_SECONDS."""
        if role in self.roles and self._thread is not None and not self._stop.is_set():
            return True
        now = time.monotonic()
        read_at, roles = self._live_roles
        if now - read_at > LIVE_ROLES_SECONDS:
            roles = self.store.live_roles(time.time() - LOST_AFTER_SECONDS)
            self._live_roles = (now, roles)
        return role in roles

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.store.beat(self.id, time.time())
            except Exception as error:  # noqa: BLE001 - keep beating; readiness reports the database
                log.warning("node heartbeat failed: %r", error)


def describe(store: NodeStore, now: float | None = None) -> list[dict]:
    """Every registered node with its state and the work it holds (ARM-style items): the
    operations its workers have claimed, the uploads it is receiving and the disk access (SAS)
    sessions whose pages it keeps."""
    now = now or time.time()
    registered = store.all()
    held: dict[str, list[dict]] = {}
    for operation in store.held_operations(now):
        held.setdefault(operation.node_id, []).append({
            "operationId": operation.operation_id, "kind": f"{operation.resource_type}/{operation.action}",
            "resourceId": operation.resource_id, "since": operation.since})
    receiving = _uploads_by_node(store.held_uploads(now), registered)
    for node_id, resource_id in store.held_sessions():  # SAS sessions: their pages are on that node
        receiving.setdefault(node_id, []).append({"kind": "diskAccess", "resourceId": resource_id})
    items = []
    for node in registered:
        age = max(0.0, now - node.heartbeat_at)
        state = "Stopped" if node.stopped_at else ("Lost" if age > LOST_AFTER_SECONDS else "Running")
        items.append({
            "id": f"/providers/Galley.Operations/nodes/{node.id}", "name": node.id,
            "type": "Galley.Operations/nodes",
            "properties": {"nodeName": node.name, "roles": list(node.roles), "url": node.url,
                           "version": node.version, "state": state,
                           "startedAt": _iso(node.started_at), "lastHeartbeat": _iso(node.heartbeat_at),
                           "heartbeatAgeSeconds": round(age, 1), "work": held.get(node.id, []),
                           "uploads": receiving.get(node.id, [])}})
    return items


def _uploads_by_node(leases, registered) -> dict[str, list[dict]]:
    """Each live upload lease under the node of its owning process: the one started last when a
    process was registered more than once (servers run in one test process)."""
    newest: dict[str, str] = {}
    for node in sorted(registered, key=lambda n: n.started_at):
        if node.process and node.stopped_at is None:
            newest[node.process] = node.id
    by_node: dict[str, list[dict]] = {}
    for lease in leases:
        if lease.process in newest:
            by_node.setdefault(newest[lease.process], []).append({
                "kind": "upload", "resourceId": lease.resource_id, "until": _iso(lease.until)})
    return by_node


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
