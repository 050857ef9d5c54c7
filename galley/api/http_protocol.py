"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for a request's head.

uvicorn closes idle kept-alive connections (timeout_keep_alive) but waits forever for a request
head that arrives a byte at a time, or not at all after the connection opened: each such
connection holds a socket and memory. Here a head must be complete within `header_timeout`
seconds, counted from the moment the connection opened (after the TLS handshake, which asyncio
limits itself, 60 s) or from the first byte of the next request on a kept-alive connection;
otherwise the connection is closed. Bodies have their own deadline (slow_clients.py).
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("galley.api")


class HeadDeadlineProtocol(H11Protocol):
    header_timeout = 30.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of a next request on a kept-alive connection
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.header_timeout > 0:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
            log.info("closed a connection from %s: no complete request head within %g s", client, self.header_timeout)
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to give uvicorn.Config(http=...)."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": seconds})
