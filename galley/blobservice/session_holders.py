"""Which node holds each disk access session, for Galley on several nodes.

A Write session's pages (ledger and overlay, page_store.py) are files in the home of the node that
granted it, so the session can only be served there. That node records itself as the session's
holder in the database; a node that gets a request for a session it does not have looks the
holder up and forwards the request (api/forwarding.py). A restarted node takes the sessions in its
home back under its new node id. On one node nothing here is ever consulted: the session is local.
"""

from __future__ import annotations

import time

from ..observability.nodes import LOST_AFTER_SECONDS
from ..store.node_store import NodeRecord, NodeStore
# How long a looked-up holder of a session id is reused: every Put Page of a session that reaches
# a non-holding node asks, and a stale answer only sends a request to a node that refuses it.
REMEMBER_SECONDS = 5.0
HOLDER_RETRY_SECONDS = 10  # Retry-After while the holder is down


class HeldElsewhere(Exception):
    """The session is another node's: the request must go there."""

    def __init__(self, holder: NodeRecord) -> None:
        super().__init__(f"held by node '{holder.name}'")
        self.holder = holder

    @property
    def reachable(self) -> bool:
        return (self.holder.stopped_at is None and bool(self.holder.url)
                and time.time() - self.holder.heartbeat_at < LOST_AFTER_SECONDS)


class SessionHolders:
    def __init__(self, store: NodeStore | None, node_id: str | None) -> None:
        self.store, self.node_id = store, node_id
        self._remembered: dict[str, tuple[float, NodeRecord | None]] = {}

    def hold(self, session_id: str, resource_key: str) -> None:
        if self.store is not None:
            self.store.hold_session(session_id, resource_key, self.node_id)

    def drop(self, session_id: str) -> None:
        if self.store is not None:
            self.store.drop_session(session_id)

    def elsewhere(self, *, session_id: str | None = None, resource_key: str | None = None) -> HeldElsewhere | None:
        """The other node holding this session, if another one does."""
        if self.store is None:
            return None
        if session_id is not None:
            holder = self._holder_of_session(session_id)
        else:
            holder = self.store.session_holder(resource_key=resource_key)
        if holder is None or holder.id == self.node_id:
            return None
        return HeldElsewhere(holder)

    def _holder_of_session(self, session_id: str) -> NodeRecord | None:
        now = time.monotonic()
        seen = self._remembered.get(session_id)
        if seen is not None and now - seen[0] < REMEMBER_SECONDS:
            return seen[1]
        holder = self.store.session_holder(session_id=session_id)
        if len(self._remembered) > 1024:
            self._remembered.clear()
        self._remembered[session_id] = (now, holder)
        return holder
