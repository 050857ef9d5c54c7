"""ARM's request ids on every response, and in the logs of the request that made them.

Each request gets a new `x-ms-request-id` and an `x-ms-correlation-request-id`: the client's own
when it sent a usable one (ASCII letters, digits and `._:{}-`, at most 128 characters: nothing that
could split a header or a log line is ever echoed), a new id otherwise. Both go back as response
headers on every answer, whoever makes it (a route, a refusal, a 404, a 500, a download), because
this middleware wraps the whole application, Starlette's error middleware included.

While the request runs, `current()` names its ids (a context variable), so log lines can too.
"""

from __future__ import annotations

import itertools
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_HEADER = b"x-ms-request-id"
CORRELATION_HEADER = b"x-ms-correlation-request-id"
CLIENT_REQUEST_HEADER = b"x-ms-client-request-id"
_OURS = (REQUEST_HEADER, CORRELATION_HEADER)
_USABLE = re.compile(rb"[A-Za-z0-9._:{}\-]{1,128}")
_PREFIX = str(uuid.uuid4())[:24]  # random per process; a counter makes the rest
_COUNTER = itertools.count(1)


def new_id() -> str:
    """A GUID-shaped id unique to this request (a quarter of uuid4()'s cost: every request makes one)."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def client_id(scope: Scope, name: bytes) -> str | None:
    """A client-sent id, when it is one (printable, short); never anything else echoed or stored."""
    value = next((v for k, v in scope.get("headers", ()) if k == name), None)
    return value.decode("ascii") if value is not None and _USABLE.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class RequestIds:
    request_id: str
    correlation_id: str

    def describe(self) -> str:
        """For a log line: `request id …, correlation id …`."""
        return f"request id {self.request_id}, correlation id {self.correlation_id}"


_current: ContextVar[RequestIds | None] = ContextVar("galley_request_ids", default=None)


def current() -> RequestIds | None:
    """The ids of the request this code runs for, if any."""
    return _current.get()


def describe_current() -> str:
    ids = _current.get()
    return ids.describe() if ids else "outside a request"


def of(scope: Scope) -> RequestIds:
    """The request's ids (made here when the middleware did not run, e.g. a bare test app)."""
    state = scope.setdefault("state", {})
    ids = state.get("request_ids")
    if ids is None:
        ids = state["request_ids"] = RequestIds(new_id(), client_id(scope, CORRELATION_HEADER) or new_id())
    return ids


class RequestIdMiddleware:
    """The outermost layer: ids made, set for the logs, and added to the response's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ids = of(scope)
        headers = [(REQUEST_HEADER, ids.request_id.encode()), (CORRELATION_HEADER, ids.correlation_id.encode())]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":  # these ids, whatever a route set
                message = {**message, "headers": [
                    *(h for h in message.get("headers", ()) if h[0].lower() not in _OURS), *headers]}
            await send(message)

        token = _current.set(ids)
        try:
            await self.app(scope, receive, sending)
        finally:
            _current.reset(token)
