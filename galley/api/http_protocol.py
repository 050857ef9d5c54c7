"""uvicorn's HTTP/1.1 protocols (httptools, and h11 where httptools is missing) with a deadline
for a request's head.

uvicorn closes idle kept-alive connections (timeout_keep_alive) but waits forever for a request
head that arrives a byte at a time, or not at all after the connection opened: each such
connection holds a socket and memory. Here a head must be complete within `header_timeout`
seconds, counted from the moment the connection opened (after the TLS handshake, which the event
loop limits itself, 60 s) or from the first byte of the next request on a kept-alive connection;
otherwise the connection is closed. Bodies have their own deadline (slow_clients.py).

httptools (C) is the default: it parses and hands on a large body with far less work per byte
than h11 (pure Python, which also joins every piece of a response it sends).
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed
    HttpToolsProtocol = None

log = logging.getLogger("galley.api")
# Reading a connection stops while more than this much of a request body waits for the
# application (uvicorn stops at 64 KiB): an upload's next pieces keep arriving while it stores one.
BODY_HIGH_WATER = 1024 * 1024


class HeadDeadline:
    """The deadline, for a uvicorn protocol class that says whether it awaits a request head."""

    header_timeout = 30.0
    _head_timer: asyncio.TimerHandle | None = None

    def awaiting_head(self) -> bool:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.awaiting_head():
            self._arm()  # the first bytes of a next request on a kept-alive connection
        super().data_received(data)
        if self._head_timer is not None and not self.awaiting_head():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # An idle kept-alive connection owes its peer nothing: drop it. A TLS close would send
        # close_notify and wait for the peer's, which a client that is not reading never sends,
        # and the server's shutdown would wait for it (the loop's TLS shutdown timeout, 30 s).
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()
        else:
            super().shutdown()

    def _arm(self) -> None:
        if self.header_timeout > 0:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.awaiting_head() and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown"
            log.info("closed a connection from %s: no complete request head within %g s", client, self.header_timeout)
            self.transport.close()


class H11HeadDeadline(HeadDeadline, H11Protocol):
    def awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE


class BodyPieces:
    """The part of a request body received and not yet handed to the application, as the pieces
    the parser gave: adding one copies nothing, and handing them over (uvicorn calls bytes() on
    this) copies only when there are several. uvicorn's own buffer is a bytearray, which copies
    each piece in and all of them out again: two passes over every byte of an upload, on the
    event loop."""

    __slots__ = ("pieces", "size")

    def __init__(self, first: bytes = b"") -> None:
        self.pieces, self.size = ([bytes(first)], len(first)) if first else ([], 0)

    def append(self, piece: bytes) -> None:
        self.pieces.append(piece)
        self.size += len(piece)

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)


if HttpToolsProtocol is not None:
    class HttpToolsHeadDeadline(HeadDeadline, HttpToolsProtocol):
        # No head yet on a new connection, and again once a request's body has all arrived;
        # the parser itself keeps no such state that Python can read.
        _head_pending = True
        body_high_water = BODY_HIGH_WATER

        def awaiting_head(self) -> bool:
            return self._head_pending

        def on_headers_complete(self) -> None:
            self._head_pending = False
            self._disarm()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:  # uvicorn's, with BodyPieces for its bytearray
            cycle = self.cycle
            if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
                return
            if type(cycle.body) is not BodyPieces:
                cycle.body = BodyPieces(cycle.body)
            cycle.body.append(body)
            if cycle.body.size > self.body_high_water:
                self.flow.pause_reading()
            cycle.message_event.set()

        def on_message_complete(self) -> None:
            self._head_pending = True
            super().on_message_complete()
else:
    HttpToolsHeadDeadline = None


def with_header_timeout(seconds: float) -> type[HeadDeadline]:
    """The protocol class to give uvicorn.Config(http=...)."""
    base = HttpToolsHeadDeadline or H11HeadDeadline
    return type(base.__name__, (base,), {"header_timeout": seconds})
