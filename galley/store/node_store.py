"""The nodes table: which Galley processes share this database, and the work each holds.

A node's workers claim operations under lease owners `{node id}.{worker name}`, so the operations
a node holds are read from the operations table itself (claimed, lease not yet run out); the
uploads it receives (disk and platform image content) are upload leases owned by its process
(host:pid, recorded with the node).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, case, delete, func, insert, literal_column, select, update

from ..domain.resource import IN_PROGRESS
from .tables import disk_access_sessions, nodes, operations, resources, upload_leases

_N = nodes.c
_O = operations.c
_U = upload_leases.c
_R = resources.c
_S = disk_access_sessions.c
# Rows of nodes stopped or silent for this long are dropped when a node starts.
FORGET_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class NodeRecord:
    id: str
    name: str
    roles: tuple[str, ...]
    url: str | None
    version: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    process: str | None = None  # host:pid: the owner of its upload leases


@dataclass(frozen=True)
class HeldSession:
    id: str
    resource_key: str
    holder: NodeRecord  # a node whose row was forgotten stands in as one never heard from
    expires_at: float | None  # None: granted before expiries were recorded (migration 0018)


@dataclass(frozen=True)
class HeldOperation:
    node_id: str
    operation_id: str
    action: str
    resource_type: str
    resource_id: str
    since: str  # the operation's start time (ISO)


@dataclass(frozen=True)
class HeldUpload:
    process: str  # host:pid of the node receiving it
    resource_id: str  # the disk's or snapshot's id; a platform image's content key
    until: float  # when the lease runs out unless renewed


@dataclass(frozen=True)
class QueueRow:
    action: str
    resource_type: str
    claimed: bool
    count: int
    oldest: str  # ISO start time of the oldest


def _node(r) -> NodeRecord:
    return NodeRecord(r.id, r.name, tuple(x for x in r.roles.split(",") if x), r.url, r.version,
                      r.started_at, r.heartbeat_at, r.stopped_at, r.process)


def _held(row) -> HeldSession:
    """A session row joined with its node's row, if the node is still registered (a forgotten one
    stands in as a node never heard from)."""
    holder = _node(row) if row.id is not None else NodeRecord(row.node_id, row.node_id, (), None, "", 0.0, 0.0, None)
    return HeldSession(row.session_id, row.resource_key, holder, row.expires_at)


def lease_owner(node_id: str, worker_name: str) -> str:
    return f"{node_id}.{worker_name}"


class NodeStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _connection(self, write: bool | None):
        with self.engine.connect() as connection:
            connection.info["write"] = write  # SQLite: BEGIN IMMEDIATE for writes (store/database.py)
            with connection.begin():
                yield connection

    def register(self, record: NodeRecord) -> None:
        with self._connection(True) as c:
            c.execute(delete(nodes).where(func.coalesce(_N.stopped_at, _N.heartbeat_at)
                                          < time.time() - FORGET_AFTER_SECONDS))
            c.execute(insert(nodes).values(
                id=record.id, name=record.name, roles=",".join(record.roles), url=record.url,
                version=record.version, started_at=record.started_at, heartbeat_at=record.heartbeat_at,
                stopped_at=None, process=record.process))

    def beat(self, node_id: str, now: float) -> None:
        with self._connection(True) as c:
            c.execute(update(nodes).where(_N.id == node_id).values(heartbeat_at=now))

    def stopped(self, node_id: str, now: float) -> None:
        with self._connection(True) as c:
            c.execute(update(nodes).where(_N.id == node_id).values(stopped_at=now, heartbeat_at=now))

    def all(self) -> list[NodeRecord]:
        with self._connection(None) as c:
            rows = c.execute(select(nodes).order_by(_N.name, _N.started_at)).all()
        return [_node(r) for r in rows]

    # ---- disk access sessions (their pages live on one node) -------------------------------------
    def hold_session(self, session_id: str, resource_key: str, node_id: str, expires_at: float) -> None:
        """Record that `node_id` holds the session, which runs out at `expires_at`."""
        with self._connection(True) as c:
            c.execute(delete(disk_access_sessions).where(
                (_S.id == session_id) | (_S.resource_key == resource_key)))
            c.execute(insert(disk_access_sessions).values(id=session_id, resource_key=resource_key,
                                                          node_id=node_id, expires_at=expires_at))

    def extend_session(self, session_id: str, expires_at: float) -> None:
        with self._connection(True) as c:
            c.execute(update(disk_access_sessions).where(_S.id == session_id).values(expires_at=expires_at))

    def reclaim_session(self, session_id: str, node_id: str) -> bool:
        """A restarted node takes a session in its home back; False when the session's row is gone
        (another node ended it while this one was away)."""
        with self._connection(True) as c:
            return c.execute(update(disk_access_sessions).where(_S.id == session_id)
                             .values(node_id=node_id)).rowcount == 1

    @staticmethod
    def end_session(connection: Connection, session_id: str, node_id: str) -> bool:
        """In the caller's transaction: delete the session's row if it still names `node_id`.
        True for the one caller that deleted it, so a session is ended exactly once."""
        return connection.execute(delete(disk_access_sessions).where(
            _S.id == session_id, _S.node_id == node_id)).rowcount == 1

    def held_sessions(self) -> list[tuple[str, str]]:
        """(node id, disk or snapshot id) of every disk access session, the id as it was named."""
        with self._connection(None) as c:
            rows = c.execute(select(_S.node_id, func.coalesce(_R.id, _S.resource_key))
                             .select_from(disk_access_sessions.outerjoin(resources, _R.key == _S.resource_key))
                             .order_by(_S.node_id)).all()
        return [(r[0], r[1]) for r in rows]

    def held_session(self, *, session_id: str | None = None, resource_key: str | None = None) -> HeldSession | None:
        """A session's row with its holder, found by the session's id or by its disk's key."""
        where = _S.id == session_id if session_id is not None else _S.resource_key == resource_key
        found = self._held_sessions(where)
        return found[0] if found else None

    def sessions_of_silent_nodes(self, since: float) -> list[HeldSession]:
        """The sessions whose holder is stopped, not heard from since `since`, or forgotten."""
        return self._held_sessions(_N.id.is_(None) | _N.stopped_at.is_not(None) | (_N.heartbeat_at < since))

    def _held_sessions(self, where) -> list[HeldSession]:
        with self._connection(None) as c:
            rows = c.execute(select(_S.id.label("session_id"), _S.resource_key, _S.node_id, _S.expires_at, nodes)
                             .select_from(disk_access_sessions.outerjoin(nodes, _S.node_id == _N.id))
                             .where(where)).all()
        return [_held(row) for row in rows]

    def live_roles(self, since: float) -> frozenset[str]:
        """The roles of the nodes running and heard from since `since` (one small read)."""
        with self._connection(None) as c:
            rows = c.execute(select(_N.roles).distinct()
                             .where(_N.stopped_at.is_(None), _N.heartbeat_at >= since)).scalars().all()
        return frozenset(role for roles in rows for role in roles.split(",") if role)

    def held_operations(self, now: float) -> list[HeldOperation]:
        """Operations under a live lease, with the node whose worker holds each."""
        with self._connection(None) as c:
            rows = c.execute(select(_O.id, _O.action, _O.resource_type, _O.resource_id, _O.start_time, _O.lease_owner)
                             .where(_O.status == IN_PROGRESS, _O.lease_until >= now, _O.lease_owner.is_not(None))
                             .order_by(_O.start_time)).all()
        return [HeldOperation(r.lease_owner.split(".", 1)[0], r.id, r.action, r.resource_type, r.resource_id,
                              r.start_time) for r in rows]

    def held_uploads(self, now: float) -> list[HeldUpload]:
        """Upload leases not yet run out, with the resource's id as it was named where known."""
        with self._connection(None) as c:
            rows = c.execute(select(_U.owner, _U.until, func.coalesce(_R.id, _U.resource_key))
                             .select_from(upload_leases.outerjoin(resources, _R.key == _U.resource_key))
                             .where(_U.until >= now).order_by(_U.until)).all()
        return [HeldUpload(r[0], r[2], r[1]) for r in rows]

    def queue(self, now: float) -> list[QueueRow]:
        """Unfinished operations by kind, waiting or claimed: one grouped query (scraped often)."""
        claimed = case((_O.lease_until >= now, True), else_=False)
        with self._connection(None) as c:
            rows = c.execute(select(_O.action, _O.resource_type, claimed.label("claimed"), func.count(),
                                    func.min(_O.start_time))
                             .where(_O.status == IN_PROGRESS)
                             # by position: PostgreSQL takes two renderings of `claimed` for two expressions
                             .group_by(_O.action, _O.resource_type, literal_column("3"))).all()
        return [QueueRow(r[0], r[1], bool(r[2]), int(r[3]), r[4]) for r in rows]
