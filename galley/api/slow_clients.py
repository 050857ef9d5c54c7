"""Limits on clients that send slowly or hold many uploads open, for the whole application.

- Body timeout: a request that declared a body (Content-Length or chunked) has at most
  `settings.body_timeout` seconds to send each next piece of it while the application waits for
  it. When it stalls, whatever the application was doing with the body is abandoned (receive()
  raises BodyReadTimeout, so an upload drops its temporary file and releases its lease as on any
  error) and the client gets a 408 `RequestTimeout` with `Connection: close`, unless an answer had
  already begun; either way the connection is closed.
- Upload cap: a client address may run `settings.uploads_per_client` uploads at once (disk and
  snapshot content, blobs, and any request declaring a body larger than a JSON body may be); one
  more is a 429 `TooManyRequests` with Retry-After. Behind a proxy
  every client shares the proxy's address, so the cap is then per proxy (raise it there).
- `client_gone(error)` tells the error handlers which errors are a client going away, not a bug.

The time a client may take to send a request's head is limited in the HTTP protocol itself
(http_protocol.py), since no ASGI application sees a request before its head is complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("galley.api")
UPLOAD_RETRY_AFTER_SECONDS = 10


class BodyReadTimeout(Exception):
    """The client declared a body and stopped sending it."""


def client_gone(error: BaseException) -> bool:
    """An error that means the client stopped talking (closed, reset, stalled), not a bug."""
    return isinstance(error, (ClientDisconnect, ConnectionError, BodyReadTimeout))


def is_upload(scope: Scope, max_json_bytes: int) -> bool:
    path = scope["path"].rstrip("/").lower()
    if scope["method"] == "PUT" and (path.endswith("/upload") or path.startswith("/blob/")):
        return True
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    return declared.isdigit() and len(declared) < 20 and int(declared) > max_json_bytes


def declares_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


async def send_error(send: Send, status: int, code: str, message: str, headers: tuple = ()) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message, "target": None}})
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class SlowClientLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.uploads: Counter[str] = Counter()  # running uploads by client address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.settings
        if not is_upload(scope, settings.max_body_bytes):
            await self._with_body_deadline(scope, receive, send, settings.body_timeout)
            return
        client = scope["client"][0] if scope.get("client") else "unknown"
        if self.uploads[client] >= settings.uploads_per_client:
            await send_error(send, 429, "TooManyRequests",
                             f"This client already has {self.uploads[client]} uploads running, the most one client "
                             f"may run at once ({settings.uploads_per_client}); retry when one has finished.",
                             ((b"retry-after", str(UPLOAD_RETRY_AFTER_SECONDS).encode()),))
            return
        self.uploads[client] += 1
        try:
            await self._with_body_deadline(scope, receive, send, settings.body_timeout)
        finally:
            self.uploads[client] -= 1
            if not self.uploads[client]:
                del self.uploads[client]

    async def _with_body_deadline(self, scope: Scope, receive: Receive, send: Send, seconds: float) -> None:
        if seconds <= 0 or not declares_body(scope):
            await self.app(scope, receive, send)
            return
        body_done = timed_out = started = False

        async def receiving() -> Message:
            nonlocal body_done, timed_out
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout(seconds):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise BodyReadTimeout(f"no part of the request body arrived for {seconds:g} s") from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if timed_out and not started:
                return  # the application's answer to the stall is replaced by the 408 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception:
            if not timed_out:
                raise
        if timed_out:
            client = scope.get("client")
            log.info("%s %s: the client stopped sending its body for %g s; abandoned (client %s)",
                     scope["method"], scope["path"], seconds, client[0] if client else "unknown")
            if not started:
                await send_error(send, 408, "RequestTimeout",
                                 f"The request body stopped arriving: nothing was received for {seconds:g} seconds. "
                                 "Nothing was changed; send the request again.", ((b"connection", b"close"),))
