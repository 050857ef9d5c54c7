"""Signing people in: OAuth 2.0's authorization-code grant with PKCE (RFC 6749, RFC 7636) for the
portal, the password grant for scripts and `az login -u`, refresh tokens, and sign-out.

The flow, for the portal (a public client: no secret, so PKCE is required):
  1. the browser goes to GET /{tenant}/oauth2/v2.0/authorize with client_id, redirect_uri,
     code_challenge (S256) and state; the sign-in page posts the user's name and password back;
  2. a good password starts a sign-in session (the authority's cookie) and the browser is sent to
     redirect_uri?code=…&state=…; the code is good once, for CODE_SECONDS, and only together with
     the same client_id, the same redirect_uri and the verifier whose SHA-256 is the challenge;
  3. POST /{tenant}/oauth2/v2.0/token with grant_type=authorization_code answers an access token
     (the lifetime of every token of this server, 60 minutes by default), an id_token and a
     refresh token. While the session lasts, a new authorize request is answered with a code at
     once (no page), which is how the portal gets a new token when one expires.

Sign-out ends the session: its refresh tokens are dropped and its access tokens, which carry the
session's id as `sid`, are refused from then on (identity/tokens.py). A code redeemed twice ends
its session too (RFC 6749 §4.1.2: the first redemption may have been a thief's).

What is stored: hashes (SHA-256) of codes, session cookies and refresh tokens; all are 256-bit
random values, so a fast hash is enough. Passwords are identity/users.py's business.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets as random
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from ..domain.identity import Tenant
from ..store.user_store import CodeRecord, RefreshRecord, SessionRecord, UserStore
from .authority import OAuthError
from .secrets import same_text
from .tokens import Tokens, resource_of_scope
from .users import User, Users

# The portal's client id: a built-in public client of every tenant, as Azure's own first-party
# apps have well-known ids. The Azure CLI's id is accepted for the password grant (az login -u).
PORTAL_CLIENT_ID = "a3c0b2c4-9d2e-4c1b-8f3a-6a7e0d5b1c01"
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
PUBLIC_CLIENTS = {PORTAL_CLIENT_ID: "Galley portal", AZURE_CLI_CLIENT_ID: "Microsoft Azure CLI"}
# Tenants a client may name before it knows the user's: the user's own is found from the name.
ANY_TENANT = {"common", "organizations"}

CODE_SECONDS = 60
SESSION_SECONDS = 12 * 3600
CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
VERIFIER = CHALLENGE
MAX_STATE = 2048


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


class AuthorizeError(Exception):
    """An authorize request that is refused. Without `request`, the client or redirect_uri cannot
    be trusted, so the error is shown on a page, never sent there (RFC 6749 §4.1.2.1); with it,
    the error goes back to the request's redirect_uri."""

    def __init__(self, error: str, description: str, request: AuthorizeRequest | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.request = request


@dataclass(frozen=True)
class AuthorizeRequest:
    tenant: Tenant | None  # None: common/organizations
    tenant_in_path: str
    client_id: str
    redirect_uri: str
    state: str
    code_challenge: str
    scope: str
    prompt: str
    login_hint: str

    def form_fields(self) -> dict[str, str]:
        """What the sign-in page posts back, besides the name, password and CSRF token."""
        return {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "state": self.state,
                "response_type": "code", "code_challenge": self.code_challenge,
                "code_challenge_method": "S256", "scope": self.scope}

    def error_redirect(self, error: str, description: str) -> str:
        return _with_query(self.redirect_uri, {"error": error, "error_description": description,
                                               "state": self.state})


def _with_query(uri: str, values: dict[str, str]) -> str:
    values = {k: v for k, v in values.items() if v}
    return f"{uri}{'&' if '?' in uri else '?'}{urlencode(values)}"


class SignIn:
    def __init__(self, store: UserStore, users: Users, tokens: Tokens) -> None:
        self.store = store
        self.users = users
        self.tokens = tokens
        self.code_seconds = CODE_SECONDS
        self.session_seconds = SESSION_SECONDS

    # -- the authorize endpoint ------------------------------------------------------------
    def tenant(self, tenant_in_path: str) -> Tenant | None:
        """The tenant an authority URL names (None for common/organizations); OAuthError if none."""
        if tenant_in_path.lower() in ANY_TENANT:
            return None
        with self.store.read() as tx:
            found = tx.tenant(tenant_in_path)
        if found is None or found.issuer is not None:
            raise OAuthError(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant_in_path}' not found. This "
                             "server's authority signs in only its own tenants.", 90002)
        return found

    def authorize_request(self, tenant_in_path: str, params: dict[str, str],
                          portal_origins: tuple[str, ...]) -> AuthorizeRequest:
        """The request checked: client and redirect_uri first (errors shown, not redirected),
        then the rest (errors sent back to the client's redirect_uri)."""
        try:
            tenant = self.tenant(tenant_in_path)
        except OAuthError as error:
            raise AuthorizeError(error.error, error.description) from None
        client_id = params.get("client_id", "").strip().lower()
        if client_id != PORTAL_CLIENT_ID:
            raise AuthorizeError("unauthorized_client", f"AADSTS700016: Application with identifier "
                                 f"'{client_id}' was not found: this authority signs in to the Galley portal "
                                 f"only (client_id {PORTAL_CLIENT_ID}).")
        redirect_uri = params.get("redirect_uri", "")
        if not _is_portal_url(redirect_uri, portal_origins):
            raise AuthorizeError("invalid_request", f"AADSTS50011: The redirect URI '{redirect_uri[:200]}' does "
                                 "not match the portal's address on this server (its origin followed by '/').")
        request = AuthorizeRequest(
            tenant=tenant, tenant_in_path=tenant_in_path, client_id=client_id, redirect_uri=redirect_uri,
            state=params.get("state", "")[:MAX_STATE], code_challenge=params.get("code_challenge", ""),
            scope=params.get("scope", "") or "openid profile offline_access",
            prompt=params.get("prompt", ""), login_hint=params.get("login_hint", "")[:320])
        if params.get("response_type") != "code":
            raise AuthorizeError("unsupported_response_type", "AADSTS70000: response_type must be 'code'.",
                                 request)
        if params.get("code_challenge_method") != "S256" or not CHALLENGE.match(request.code_challenge):
            raise AuthorizeError("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required: "
                                 "give code_challenge (43 to 128 characters) and code_challenge_method=S256.",
                                 request)
        return request

    def sign_in(self, request: AuthorizeRequest, username: str, password: str) -> tuple[SessionRecord, str]:
        """A new session for the user the password proves (and its cookie's value)."""
        user = self.users.authenticate(request.tenant, username, password)
        return self._start_session(user)

    def _start_session(self, user: User) -> tuple[SessionRecord, str]:
        cookie = random.token_urlsafe(32)
        now = time.time()
        session = SessionRecord(id=str(uuid.uuid4()), user_id=user.id, tenant_id=user.tenant_id, created_at=now,
                                expires_at=now + self.session_seconds, ended_at=None)
        with self.store.write() as tx:
            tx.drop_sign_in_state_before(now - 60)
            tx.add_session(session, digest(cookie))
        return session, cookie

    def session_of_cookie(self, cookie: str | None, tenant: Tenant | None) -> SessionRecord | None:
        """The live session the browser's cookie names (of `tenant`, when one is named)."""
        if not cookie or len(cookie) > 128:
            return None
        with self.store.read() as tx:
            session = tx.session_by_cookie(digest(cookie))
            if session is None or not session.active(time.time()) or tx.user(session.user_id) is None:
                return None
        return session if tenant is None or session.tenant_id == tenant.id else None

    def code_redirect(self, request: AuthorizeRequest, session: SessionRecord) -> str:
        """Where the browser goes with its new one-time code."""
        code = random.token_urlsafe(32)
        with self.store.write() as tx:
            tx.add_code(CodeRecord(code_hash=digest(code), session_id=session.id, client_id=request.client_id,
                                   redirect_uri=request.redirect_uri, code_challenge=request.code_challenge,
                                   scope=request.scope, expires_at=time.time() + self.code_seconds,
                                   redeemed_at=None))
        return _with_query(request.redirect_uri, {"code": code, "state": request.state})

    def sign_out(self, cookie: str | None) -> SessionRecord | None:
        session = self.session_of_cookie(cookie, None)
        if session is not None:
            self.end_session(session.id)
        return session

    def end_session(self, session_id: str) -> None:
        with self.store.write() as tx:
            tx.end_session(session_id, time.time())
        self.tokens.forget_session(session_id)

    # -- the token endpoint's grants -------------------------------------------------------
    def redeem_code(self, tenant_in_path: str, form: dict[str, str], origin: str) -> dict:
        tenant = self.tenant(tenant_in_path)
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        client_id = form.get("client_id", "").strip().lower()
        if not code or not client_id:
            raise OAuthError(400, "invalid_request", "AADSTS900144: The request body must contain 'code' and "
                             "'client_id'.", 900144)
        now = time.time()
        with self.store.write() as tx:
            record = tx.code(digest(code))
            if record is None or record.expires_at <= now:
                raise OAuthError(400, "invalid_grant", "AADSTS70008: The provided authorization code has "
                                 "expired or is not valid. Sign in again.", 70008)
            if not tx.redeem_code(record.code_hash, now):
                tx.end_session(record.session_id, now)
                reused = record.session_id
            else:
                reused = None
            session = tx.session(record.session_id)
        if reused is not None:
            self.tokens.forget_session(reused)
            raise OAuthError(400, "invalid_grant", "AADSTS54005: The authorization code was already redeemed; "
                             "its sign-in session has been ended. Sign in again.", 54005)
        if record.client_id != client_id:
            raise OAuthError(400, "invalid_grant", f"AADSTS700005: The authorization code was issued to another "
                             f"client than '{client_id}'.", 700005)
        if form.get("redirect_uri", "") != record.redirect_uri:
            raise OAuthError(400, "invalid_grant", "AADSTS500117: The redirect_uri does not match the one the "
                             "authorization code was issued for.", 500117)
        if not VERIFIER.match(verifier) or not same_text(record.code_challenge, s256(verifier)):
            raise OAuthError(400, "invalid_grant", "AADSTS501481: The code_verifier does not match the "
                             "code_challenge supplied in the authorization request.", 501481)
        return self._answer(tenant, session, client_id, form.get("scope") or record.scope, origin, form)

    def refresh(self, tenant_in_path: str, form: dict[str, str], origin: str) -> dict:
        tenant = self.tenant(tenant_in_path)
        token = form.get("refresh_token", "")
        client_id = form.get("client_id", "").strip().lower()
        with self.store.write() as tx:
            record = tx.take_refresh_token(digest(token)) if token else None
            session = tx.session(record.session_id) if record else None
        if record is None or record.expires_at <= time.time() or record.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "AADSTS700082: The refresh token is not valid: it has expired, "
                             "was used already, or its session has ended. Sign in again.", 700082)
        return self._answer(tenant, session, client_id, form.get("scope") or record.scope, origin, form)

    def password_grant(self, tenant_in_path: str, form: dict[str, str], origin: str) -> dict:
        """Resource owner password credentials (az login -u … -p …): public clients only."""
        tenant = self.tenant(tenant_in_path)
        client_id = form.get("client_id", "").strip().lower()
        if client_id not in PUBLIC_CLIENTS:
            raise OAuthError(400, "unauthorized_client", f"AADSTS700016: Application with identifier "
                             f"'{client_id}' may not use the password grant here.", 700016)
        user = self.users.authenticate(tenant, form.get("username", ""), form.get("password", ""))
        session, _ = self._start_session(user)
        return self._answer(tenant, session, client_id, form.get("scope", ""), origin, form)

    def _answer(self, tenant: Tenant | None, session: SessionRecord | None, client_id: str, scope: str,
                origin: str, form: dict[str, str]) -> dict:
        now = time.time()
        user = self.users.by_id(session.user_id) if session else None
        if session is None or not session.active(now) or user is None:
            raise OAuthError(400, "invalid_grant", "AADSTS50173: The sign-in session has ended (signed out, "
                             "expired or the user was deleted). Sign in again.", 50173)
        if tenant is not None and tenant.id != user.tenant_id:
            raise OAuthError(400, "invalid_grant", f"AADSTS50020: The user is not in tenant '{tenant.id}'.", 50020)
        resource = resource_of_scope(scope)
        access_token, expires_in = self.tokens.issue_for_user(
            user.principal, user.user_principal_name, client_id, session.id, origin, resource, "user_impersonation")
        refresh = random.token_urlsafe(32)
        with self.store.write() as tx:
            tx.add_refresh_token(RefreshRecord(token_hash=digest(refresh), session_id=session.id, client_id=client_id,
                                               scope=scope, expires_at=session.expires_at))
        body = {"token_type": "Bearer", "scope": scope or f"{origin}/.default", "expires_in": expires_in,
                "ext_expires_in": expires_in, "access_token": access_token, "refresh_token": refresh,
                "refresh_token_expires_in": int(session.expires_at - now),
                "id_token": self.tokens.issue_id_token(user.principal, user.user_principal_name, client_id,
                                                       session.id, origin, form.get("nonce"))}
        if form.get("client_info") == "1":  # MSAL's account key: the user's and its tenant's ids
            info = f'{{"uid":"{user.id}","utid":"{user.tenant_id}"}}'.encode()
            body["client_info"] = base64.urlsafe_b64encode(info).decode().rstrip("=")
        return body


def _is_portal_url(uri: str, origins: tuple[str, ...]) -> bool:
    """The portal's page on one of this server's origins: `{origin}/`, nothing else."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return (parts.path == "/" and not parts.query and not parts.fragment and not parts.username
            and origin in {o.rstrip("/").lower() for o in origins})
