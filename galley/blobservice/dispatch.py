"""The Blob service's front door: an ASGI middleware that takes the requests addressed to a blob
account (path-style: /{account}/{container}/{blob}) before Galley's ARM middlewares see them.

A request is the Blob service's when its first path segment is shaped like an account name
(`md-…` for disk access, or 3-24 lower-case letters and digits), is not one of Galley's own
top-level path words, and a resolver on `app.state.blob_accounts` knows it (`md-…` names are
always answered here: an unknown one is a revoked or expired disk SAS, a 403).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api import outages
from ..domain.storage_account import RESERVED_NAMES
from ..store import refused_values
from . import conditions
from .accounts import BlobAccount, BlobRequest
from .errors import BlobError, authentication_failed
from .session_holders import HOLDER_RETRY_SECONDS, HeldElsewhere
from .operations import HANDLERS, identify, not_here

log = logging.getLogger("galley.blobservice")
DISK_ACCOUNT = re.compile(r"^md-[a-z0-9]+$")
STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
# Top-level words Galley (or its identity endpoints) may use besides those of its routes: the
# names storage accounts may not take (domain/storage_account.py refuses them at creation).
RESERVED = RESERVED_NAMES | {"openapi.json", "favicon.ico"}


def reserved_words(app) -> frozenset[str]:
    words = set(RESERVED)
    for route in getattr(app, "routes", ()):
        first = getattr(route, "path", "").lstrip("/").split("/", 1)[0]
        if first and "{" not in first:
            words.add(first.lower())
    return frozenset(words)


class BlobService:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._reserved: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts = scope["path"].lstrip("/").split("/", 2)
        name = parts[0]
        if not (DISK_ACCOUNT.match(name) or STORAGE_ACCOUNT.match(name)):
            await self.app(scope, receive, send)
            return
        if self._reserved is None:
            self._reserved = reserved_words(scope["app"])
        if name in self._reserved:
            await self.app(scope, receive, send)
            return
        http = Request(scope, receive)
        try:
            account = resolve_account(scope["app"], name)
        except HeldElsewhere as elsewhere:  # a disk session another node holds: its answer is the answer
            account = elsewhere
        if account is None and not DISK_ACCOUNT.match(name):
            await self.app(scope, receive, send)
            return
        version = http.headers.get("x-ms-version")
        # The request metrics' label: every blob account path is one route, the Blob service.
        scope.setdefault("state", {})["route_template"] = "blob"
        try:
            if isinstance(account, HeldElsewhere):
                response = await _forward(http, account)
            else:
                response = await self._serve(http, account, name, parts)
        except BlobError as error:
            response = error.response(version)
        except Exception as error:  # noqa: BLE001 - a 503 (an outage) or 500 in Storage's shape, logged
            outage = outages.outage_of(error)
            if outage is not None:
                outages.note(http, error, outage)
                response = BlobError(503, "ServerBusy", outage.message).response(version)
                response.headers["Retry-After"] = str(outage.retry_after)
                await response(scope, receive, send)
                return
            refused = refused_values.refused_value(error)
            if refused is not None:
                response = BlobError(400, "InvalidInput", refused_values.message(refused)).response(version)
            else:
                log.exception("blob service request failed")
                response = BlobError(500, "InternalError", "The server encountered an internal error; it has "
                                     "been logged.").response(version)
        await response(scope, receive, send)

    async def _serve(self, http: Request, account: BlobAccount | None, name: str, parts: list[str]):
        container = unquote(parts[1]) if len(parts) > 1 and parts[1] else None
        blob = unquote(parts[2]) if len(parts) > 2 and parts[2] else None
        query = dict(parse_qsl(http.url.query, keep_blank_values=True))
        operation = identify(http.method, query, container, blob, http.headers)
        if account is None:
            raise authentication_failed("This disk access SAS is no longer valid (revoked or expired).")
        if operation is None:
            raise BlobError(400, "UnsupportedHttpVerb" if http.method not in ("GET", "HEAD", "PUT", "DELETE")
                            else "InvalidQueryParameterValue",
                            f"{http.method} with these query parameters is not a Blob operation Galley serves.")
        request = BlobRequest(http=http, account=name, container=container, blob=blob, operation=operation,
                              query=query)
        account.authorize(request)
        if getattr(account, "conditional_headers", False):
            not_modified = await run_in_threadpool(conditions.check, account, request)
            if not_modified is not None:
                return not_modified
        return await HANDLERS.get(operation, not_here)(account, request)


async def _forward(http: Request, elsewhere: HeldElsewhere):
    forwarder = http.app.state.forwarder
    if forwarder.was_forwarded(http):  # the holder itself no longer has it: revoked or expired
        raise authentication_failed("This disk access SAS is no longer valid (revoked or expired).")
    response = await forwarder.to_holder(http, elsewhere)
    if response is None:
        error = BlobError(503, "ServerBusy", f"The node that holds this disk access session "
                          f"('{elsewhere.holder.name}') is not answering; retry once it is back.")
        error.retry_after = HOLDER_RETRY_SECONDS
        raise error
    return response


def resolve_account(app, name: str) -> BlobAccount | None:
    for resolver in getattr(app.state, "blob_accounts", ()):
        found = resolver.resolve(name)
        if found is not None:
            return found
    return None
