"""One line per request on the `galley.access` logger, written when its answer is complete:

    127.0.0.1 "PUT /subscriptions/…/disks/d/upload?api-version=2023-04-02" 200 1873.4 ms in=20972032 out=612 request-id=… correlation-id=…

Query values that are secrets (SAS signatures, tokens, passwords) are written as `REDACTED`. A
request whose client went away before its answer was complete is logged with status 499 (as nginx
does), whatever the application tried to answer.
On unless `settings.access_log` is off (`galley serve --no-access-log`, GALLEY_ACCESS_LOG=0).
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import request_ids

log = logging.getLogger("galley.access")
_SECRET_VALUE = re.compile(
    r"(?i)(?<![^&])((?:sig|signature|code|password|[a-z_]*(?:token|secret)[a-z_]*)=)[^&]*")


def redact(query: str) -> str:
    """The query string with the values of secret parameters replaced."""
    return _SECRET_VALUE.sub(r"\1REDACTED", query)


def _printable(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode().replace('"', "%22")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["app"].state.settings.access_log or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = received = sent = 0
        complete = gone = False

        async def receiving() -> Message:
            nonlocal received, gone
            message = await receive()
            received += len(message.get("body", b""))
            gone = gone or (message["type"] == "http.disconnect" and not complete)
            return message

        async def sending(message: Message) -> None:
            nonlocal status, sent, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            ids = request_ids.of(scope)
            query = scope.get("query_string", b"").decode("latin-1")
            target = _printable(scope["path"] + (f"?{redact(query)}" if query else ""))
            client = scope.get("client")
            log.info('%s "%s %s" %s %.1f ms in=%d out=%d request-id=%s correlation-id=%s',
                     client[0] if client else "-", scope["method"], target, 499 if gone else status or "-",
                     (time.perf_counter() - started) * 1000, received, sent, ids.request_id, ids.correlation_id)
