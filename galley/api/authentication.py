"""Every request is authenticated here, once, before any route sees it.

A request carries `Authorization: Bearer <JWT>` from Galley's authority or a trusted external
issuer (identity/tokens.py verifies it). Then the request's scope is checked:
- under /subscriptions/{id}: the subscription must exist (404 SubscriptionNotFound) and belong to
  the token's tenant (403 InvalidAuthenticationTokenTenant);
- a storage account's blobs (/blob/{account}/...): the account's subscription, the same way;
- the installation's upkeep (/galley/...) and writes to the platform catalog: the home tenant's
  principals only (403 AuthorizationFailed).
Anything else signed-in callers may reach (their subscriptions, tenants and principals, the
platform catalog) is filtered to the caller's tenant by its handler.

Only the sign-in and discovery endpoints and the OpenAPI document are open (OPEN_PATHS).
The verified caller is left in scope["state"]["caller"] for the handlers.
"""

from __future__ import annotations

import re
import time

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain import ids
from ..domain.errors import ArmError
from ..domain.identity import Caller
from ..domain.names import check_subscription_id
from ..identity.tokens import TokenError

OPEN_PATHS = re.compile(
    r"^/(?:metadata/endpoints"
    r"|[^/]+/v2\.0/\.well-known/openid-configuration"
    r"|[^/]+/\.well-known/openid-configuration"
    r"|[^/]+/discovery/v2\.0/keys"
    r"|[^/]+/discovery/keys"
    r"|[^/]+/oauth2/v2\.0/token"
    r"|openapi\.json|docs|docs/oauth2-redirect|redoc)/?$")
_SUBSCRIPTION_PATH = re.compile(r"^/subscriptions/([^/]+)(?:/|$)", re.IGNORECASE)
_BLOB_PATH = re.compile(r"^/blob/([^/]+)(?:/|$)")
_PLATFORM_ADMIN = "/providers/galley.platform"
SUBSCRIPTION_CACHE_SECONDS = 5.0


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Authentication:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._subscriptions: dict[str, tuple[str, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OPEN_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            caller = self._authenticate(scope, state)
            self._check_scope(scope, state, caller)
        except Refusal as refusal:
            await self._refuse(scope, send, refusal, state)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

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

    def _check_scope(self, scope: Scope, state, caller: Caller) -> None:
        path = scope["path"]
        match = _SUBSCRIPTION_PATH.match(path)
        if match:
            self._check_subscription(state, caller, match.group(1))
            return
        match = _BLOB_PATH.match(path)
        if match:
            with state.store.read() as tx:
                account = tx.find_named(ids.STORAGE_ACCOUNT_TYPE, match.group(1))
            if account is not None:
                self._check_subscription(state, caller, account.subscription_id)
            return
        lowered = path.lower()
        admin_only = lowered.startswith("/galley/") or (
            lowered.startswith(_PLATFORM_ADMIN) and scope["method"] not in ("GET", "HEAD"))
        if admin_only and not caller.home:
            raise Refusal(403, "AuthorizationFailed",
                          f"The client '{caller.app_id or caller.object_id}' with object id "
                          f"'{caller.object_id}' does not have authorization to perform "
                          f"{scope['method']} {path}: it is reserved to the installation's "
                          "administrators (principals of the home tenant).")

    def _check_subscription(self, state, caller: Caller, subscription_id: str) -> None:
        try:
            check_subscription_id(subscription_id)
        except ArmError as error:
            raise Refusal(error.status, error.code, error.message) from None
        key = subscription_id.lower()
        cached = self._subscriptions.get(key)
        if cached is not None and time.monotonic() - cached[1] < SUBSCRIPTION_CACHE_SECONDS:
            tenant_id = cached[0]
        else:
            subscription = state.authority.subscription(key)
            if subscription is None:
                raise Refusal(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could "
                              "not be found.")
            tenant_id = subscription.tenant_id
            self._subscriptions[key] = (tenant_id, time.monotonic())
        if tenant_id != caller.tenant_id:
            raise Refusal(403, "InvalidAuthenticationTokenTenant",
                          f"The access token is from the wrong issuer '{caller.issuer}'. It must match "
                          f"the tenant associated with subscription '{subscription_id}'. Use the "
                          "authority of that subscription's tenant to get the token.")

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refusal: Refusal, state) -> None:
        body = orjson.dumps({"error": {"code": refusal.code, "message": refusal.message, "target": None}})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if refusal.status == 401:
            authority = state.tokens.audience.canonical
            description = refusal.message.replace('"', "'")
            headers.append((b"www-authenticate", (
                f'Bearer authorization_uri="{authority}/", error="invalid_token", '
                f'error_description="{description}"').encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
