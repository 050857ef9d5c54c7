"""Every request is authenticated and authorized here, once, before any route sees it.

A request carries `Authorization: Bearer <JWT>` from Galley's authority or a trusted external
issuer (identity/tokens.py verifies it): none or a bad one is a 401. Then authorization.py decides
what the request asks to do (its ARM action over a scope) and whether the caller's role grants
allow it: a 403 AuthorizationFailed (or InvalidAuthenticationTokenTenant, SubscriptionNotFound)
otherwise, before anything changes.

Only the sign-in and discovery endpoints, the OpenAPI document and the portal's page and static
files (which hold no data) and the health probes /healthz and /readyz are open (OPEN_PATHS), and a
VM's boot-diagnostics log URL, which carries its own signature and expiry (checked by its handler,
as a SAS is) because az reads it with a plain HTTP GET.
The handlers find the verified caller in scope["state"]["caller"], and for a list the caller may
read only partly, the filter of its items in scope["state"]["visible"]. While the request runs,
`sources.source_access` checks that whatever it names as a source is readable by the caller.
Every write and every refusal is recorded in the activity log (activity_recorder.py).
"""

from __future__ import annotations

import re

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain import sources
from ..domain.identity import Caller
from ..identity.tokens import TokenError
from ..observability.metrics import AUTHENTICATION_FAILURES
from .activity_recorder import Recording
from .authorization import Refusal

OPEN_PATHS = re.compile(
    r"^/(?:metadata/endpoints"
    r"|[^/]+/v2\.0/\.well-known/openid-configuration"
    r"|[^/]+/\.well-known/openid-configuration"
    r"|[^/]+/discovery/v2\.0/keys"
    r"|[^/]+/discovery/keys"
    r"|[^/]+/oauth2/v2\.0/token"
    r"|[^/]+/oauth2/v2\.0/(?:authorize|logout)|identity/static/sign-in\.css"  # people's sign-in page
    r"|common/userrealm/[^/]+"  # MSAL's question before a password grant (always "Managed")
    r"|galley/boot-diagnostics/[^/]+/serial\.log"
    r"|openapi\.json|docs|docs/oauth2-redirect|docs/static/[\w.-]+"
    r"|healthz|readyz"  # the health probes: ok or not, nothing secret (api/routes/observability.py)
    r"|portal/static/(?!.*\.\.)[\w.-]+(?:/[\w.-]+)*"  # the portal's scripts and styles (galley/portal)
    r"|)/?$")  # `|)`: the portal's page itself, at /


def _path_subscription(path: str) -> str | None:
    parts = path.split("/", 3)
    return parts[2].lower() if len(parts) > 2 and parts[1].lower() == "subscriptions" and parts[2] else None


def _source_check(access, caller):
    """What a request may do with the resources its body names (use as a source, assign an
    identity): what its caller is allowed to do there."""
    return lambda resource_id, action: access.check(caller, action, resource_id, linked=True)


class Authentication:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OPEN_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        recording = Recording(scope)  # the activity log's hook: request ids, status, an entry at the end
        try:
            await self._handle(scope, receive, recording.wrap(send), recording)
        finally:
            recording.finish(scope)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, recording: Recording) -> None:
        state = scope["app"].state
        try:
            caller = self._authenticate(scope, state)
            recording.caller = caller
            visible = state.authorizer.authorize(scope["method"], scope["path"], caller)
        except Refusal as refusal:
            await self._refuse(scope, send, refusal, state)
            return
        request_state = scope.setdefault("state", {})
        request_state["caller"] = caller
        request_state["visible"] = visible
        token = sources.source_access.set(_source_check(state.access, caller))
        subscription = _path_subscription(scope["path"])
        consumer = sources.source_consumer.set((subscription, caller.tenant_id) if subscription else None)
        try:
            await self.app(scope, receive, send)
        finally:
            sources.source_consumer.reset(consumer)
            sources.source_access.reset(token)

    @staticmethod
    def _authenticate(scope: Scope, state) -> Caller:
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            raise Refusal(401, "AuthenticationFailed",
                          "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header "
                          "is provided in an invalid format: expected 'Bearer <access token>'.")
        try:
            return state.tokens.verify(token.strip())
        except TokenError as error:
            raise Refusal(401, error.code, error.message) from None

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refusal: Refusal, state) -> None:
        body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message, "target": None}})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refusal.status == 401:
            AUTHENTICATION_FAILURES.labels(refusal.code).inc()
            authority = state.tokens.audience.canonical
            description = refusal.message.replace('"', "'")
            headers.append((b"www-authenticate", (
                f'Bearer authorization_uri="{authority}/", error="invalid_token", '
                f'error_description="{description}"').encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
