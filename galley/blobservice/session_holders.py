"""Which node holds each disk access session, for Galley on several nodes.

A Write session's pages (ledger and overlay, page_store.py) are files in the home of the node that
granted it, so the session can only be served there. That node records itself as the session's
holder in the database; a node that gets a request for a session it does not have looks the
holder up and forwards the request (api/forwarding.py). A restarted node takes the sessions in its
home back under its new node id. On one node nothing here is ever consulted: the session is local.

A holder that never comes back would strand its sessions, so the row also keeps the session's
expiry: once the holder is lost (no heartbeat for LOST_AFTER_SECONDS) and the session has run out,
any node may end it as an expiry on the holder would (disk_access.py). Ending is a conditional
delete of the row (only while it names the node believed to hold it), so a session is ended
once, and a holder that comes back finds its row gone and discards its copy.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection

from ..observability.nodes import LOST_AFTER_SECONDS
from ..store.node_store import HeldSession, NodeStore

# How long a looked-up holder of a session id is reused: every Put Page of a session that reaches
# a non-holding node asks, and a stale answer only sends a request to a node that refuses it.
REMEMBER_SECONDS = 5.0
HOLDER_RETRY_SECONDS = 10  # Retry-After while the holder is down


class HeldElsewhere(Exception):
    """The session is another node's: the request must go there."""

    def __init__(self, session: HeldSession) -> None:
        super().__init__(f"held by node '{session.holder.name}'")
        self.session = session
        self.holder = session.holder

    @property
    def reachable(self) -> bool:
        return (self.holder.stopped_at is None and bool(self.holder.url)
                and time.time() - self.holder.heartbeat_at < LOST_AFTER_SECONDS)

    @property
    def expired(self) -> bool:
        """Whether the session has run out; never known for one granted before expiries were
        recorded (it is left to its holder, as before)."""
        return self.session.expires_at is not None and time.time() >= self.session.expires_at

    @property
    def orphaned(self) -> bool:
        """The holder is lost and the session has run out: any node may end it as an expiry would.
        Before its expiry a lost holder may still come back with the session's acknowledged pages."""
        return not self.reachable and self.expired


class SessionHolders:
    def __init__(self, store: NodeStore | None, node_id: str | None) -> None:
        self.store, self.node_id = store, node_id
        self._remembered: dict[str, tuple[float, HeldSession | None]] = {}

    def hold(self, session_id: str, resource_key: str, expires_at: float) -> None:
        if self.store is not None:
            self.store.hold_session(session_id, resource_key, self.node_id, expires_at)

    def extend(self, session_id: str, expires_at: float) -> None:
        if self.store is not None:
            self.store.extend_session(session_id, expires_at)

    def reclaim(self, session_id: str) -> bool:
        """Take a session found in this node's home back under this process's node id; False when
        it was ended elsewhere meanwhile (its row is gone)."""
        return self.store is None or self.store.reclaim_session(session_id, self.node_id)

    def end(self, connection: Connection, session_id: str) -> bool:
        """In the caller's transaction: end this node's own session; False when another node
        has ended it already."""
        return self.store is None or self._end(connection, session_id, self.node_id)

    def take_over(self, connection: Connection, elsewhere: HeldElsewhere) -> bool:
        """In the caller's transaction: end a lost node's session; False when someone else (a node
        racing this one, or the holder back again) got to it first."""
        return self._end(connection, elsewhere.session.id, elsewhere.holder.id)

    def _end(self, connection: Connection, session_id: str, node_id: str) -> bool:
        self._remembered.pop(session_id, None)
        return self.store.end_session(connection, session_id, node_id)

    def elsewhere(self, *, session_id: str | None = None, resource_key: str | None = None) -> HeldElsewhere | None:
        """The other node holding this session, if another one does."""
        if self.store is None:
            return None
        if session_id is not None:
            held = self._held_by_id(session_id)
        else:
            held = self.store.held_session(resource_key=resource_key)
        if held is None or held.holder.id == self.node_id:
            return None
        return HeldElsewhere(held)

    def orphans(self) -> list[HeldElsewhere]:
        """Every session another node holds that may be ended here (see HeldElsewhere.orphaned)."""
        if self.store is None:
            return []
        silent = self.store.sessions_of_silent_nodes(time.time() - LOST_AFTER_SECONDS)
        found = [HeldElsewhere(held) for held in silent if held.holder.id != self.node_id]
        return [elsewhere for elsewhere in found if elsewhere.orphaned]

    def _held_by_id(self, session_id: str) -> HeldSession | None:
        now = time.monotonic()
        seen = self._remembered.get(session_id)
        if seen is not None and now - seen[0] < REMEMBER_SECONDS:
            return seen[1]
        held = self.store.held_session(session_id=session_id)
        if len(self._remembered) > 1024:
            self._remembered.clear()
        self._remembered[session_id] = (now, held)
        return held
