"""Access tokens: signed JWTs (RS256) in the shape Microsoft's authority gives them, issued by
Galley's authority and verified on every request, together with tokens of trusted external issuers.

Galley's own tokens carry `iss` = `{server origin}/{tenant}/v2.0`, `aud` = the resource the client
asked for (its ARM endpoint, e.g. `https://host:8070/`), `tid`, `oid`, `appid`/`azp`, `iat`, `nbf`
and `exp`. Verification accepts only RS256 with a key Galley holds (or an external issuer's key
from its JWKS), an audience that is this server, and an issuer that matches the key's owner.
Verified tokens are remembered until they expire, so a request pays one dictionary lookup.

A user's token (identity/sign_in.py) carries `idtyp` "user", its client's id as `appid`, and
`sid`, the sign-in session it was issued in: when that session ends (sign-out) the token stops
working, on this node at once and on others within SESSION_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import jwt

from ..domain.identity import Caller, Principal, Tenant
from ..store.identity_store import IdentityStore
from .external import ExternalIssuers, normalize_issuer
from .keys import ALGORITHM, KeyRing

LEEWAY_SECONDS = 30
TENANT_CACHE_SECONDS = 5.0
# How long a deleted principal's tokens may still be honoured by a node that checked it before.
PRINCIPAL_CACHE_SECONDS = 2.0
SESSION_CACHE_SECONDS = 2.0
_MAX_CACHED_TOKENS = 20_000


class TokenError(Exception):
    """A token that does not authenticate: ARM's 401 with a code and a message naming why."""

    def __init__(self, message: str, code: str = "InvalidAuthenticationToken") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Audience:
    """Where this server is reached: its origins make its issuers and its accepted audiences."""

    origins: tuple[str, ...]  # the first is canonical
    extra_audiences: tuple[str, ...] = ()

    @property
    def canonical(self) -> str:
        return self.origins[0]

    def resource(self, origin: str | None = None) -> str:
        return f"{self.origin_for(origin)}/"

    def origin_for(self, origin: str | None) -> str:
        origin = (origin or "").rstrip("/")
        return origin if origin in self.origins else self.canonical

    def accepted(self) -> list[str]:
        accepted = []
        for value in (*self.origins, *self.extra_audiences):
            value = value.rstrip("/")
            accepted += [value, value + "/"]
        return accepted

    def own_issuers(self, tenant_id: str) -> set[str]:
        return {f"{origin}/{tenant_id}/v2.0" for origin in self.origins}


def resource_of_scope(scope: str) -> str | None:
    """`https://host:8070//.default` -> `https://host:8070/`: the resource a client-credentials
    scope names (Azure CLI doubles the slash when the resource id ends in one)."""
    for item in scope.split():
        if item.endswith("/.default"):
            return item[: -len("/.default")]
    return None


class Tokens:
    def __init__(self, store: IdentityStore, keys: KeyRing, audience: Audience, lifetime: int,
                 external: ExternalIssuers) -> None:
        self.store = store
        self.keys = keys
        self.audience = audience
        self.lifetime = lifetime
        self.external = external
        self._accepted = audience.accepted()
        self._verified: dict[str, tuple[Caller, float, str, str]] = {}
        self._tenants: dict[str, Tenant] = {}
        self._tenants_at = 0.0
        self._principals: dict[str, tuple[bool, float]] = {}
        self._sessions: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    # -- issuing -----------------------------------------------------------------------------
    def issue(self, principal: Principal, origin: str | None, resource: str | None) -> tuple[str, int]:
        origin = self.audience.origin_for(origin)
        token = self._signed(principal, origin, resource or f"{origin}/", {
            "appid": principal.app_id, "azp": principal.app_id, "appidacr": "1", "idtyp": "app",
            "uti": uuid.uuid4().hex})
        return token, self.lifetime

    def issue_for_user(self, user: Principal, user_principal_name: str, client_id: str, session_id: str,
                       origin: str | None, resource: str | None, scope: str) -> tuple[str, int]:
        origin = self.audience.origin_for(origin)
        token = self._signed(user, origin, resource or f"{origin}/", {
            "appid": client_id, "azp": client_id, "appidacr": "0", "idtyp": "user",
            "name": user.display_name, "upn": user_principal_name, "unique_name": user_principal_name,
            "preferred_username": user_principal_name, "scp": scope, "sid": session_id,
            "uti": uuid.uuid4().hex})
        return token, self.lifetime

    def issue_id_token(self, user: Principal, user_principal_name: str, client_id: str, session_id: str,
                       origin: str | None, nonce: str | None = None) -> str:
        """The OpenID Connect id_token a public client (MSAL, the portal) reads who signed in from."""
        origin = self.audience.origin_for(origin)
        return self._signed(user, origin, client_id, {
            "name": user.display_name, "preferred_username": user_principal_name, "sid": session_id,
            **({"nonce": nonce} if nonce else {})})

    def _signed(self, principal: Principal, origin: str, audience: str, claims: dict) -> str:
        """A JWT for `principal` from this authority at `origin`, with the current key: the
        claims every token carries, plus `claims`."""
        now = int(time.time())
        key = self.keys.current()
        claims = {"aud": audience, "iss": f"{origin}/{principal.tenant_id}/v2.0",
                  "iat": now, "nbf": now, "exp": now + self.lifetime,
                  "tid": principal.tenant_id, "oid": principal.id, "sub": principal.id,
                  "ver": "2.0", **claims}
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})

    # -- verifying ---------------------------------------------------------------------------
    def verify(self, token: str) -> Caller:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None:
            caller, expires, kid, session_id = cached
            key = self.keys.find(kid) if kid else None
            if expires > now - LEEWAY_SECONDS and (key is None or key.usable(now)):
                self._check_principal(caller)
                self._check_session(session_id)
                return caller
            self._verified.pop(token, None)
        caller, expires, kid, session_id = self._verify_fully(token, now)
        self._check_principal(caller)
        self._check_session(session_id)
        with self._lock:
            if len(self._verified) >= _MAX_CACHED_TOKENS:
                self._verified.clear()
            self._verified[token] = (caller, expires, kid, session_id)
        return caller

    def _verify_fully(self, token: str, now: float) -> tuple[Caller, float, str, str]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise TokenError("The access token is malformed: it is not a signed JWT.") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"The access token is signed with algorithm '{header.get('alg')}'; "
                             f"only {ALGORITHM} is accepted.")
        kid = str(header.get("kid") or "")
        issuer = str(unverified.get("iss") or "")
        own = self.keys.find(kid) if kid else None
        if own is not None:
            if not own.usable(now):
                raise TokenError("The access token is signed by a key that was rotated out and is no "
                                 "longer valid. Get a new token.")
            verifying_key = own.private_key.public_key()
        elif issuer and self.external.trusts(issuer):
            external_key = self.external.key(issuer, kid)
            if external_key is None:
                raise TokenError(f"The access token is signed by key '{kid}', which issuer '{issuer}' "
                                 "does not publish.")
            verifying_key = external_key.key
        else:
            raise TokenError(f"The access token is from issuer '{issuer}', which this server does not "
                             "trust, or is signed by a key it does not know.")
        claims = self._decode(token, verifying_key, now)
        tenant = self._tenant_for(claims, own is not None)
        object_id = str(claims.get("oid") or claims.get("sub") or "").lower()
        if not object_id:
            raise TokenError("The access token has no 'oid' claim naming who it was issued to.")
        user = own is not None and claims.get("idtyp") == "user"
        caller = Caller(tenant_id=tenant.id, object_id=object_id,
                        app_id=str(claims.get("appid") or claims.get("azp") or "") or None,
                        issuer=str(claims["iss"]), home=tenant.is_home and not user, user=user,
                        user_principal_name=str(claims.get("upn") or "") or None if user else None)
        session_id = str(claims.get("sid") or "") if own is not None else ""
        return caller, float(claims["exp"]), kid if own is not None else "", session_id

    def _decode(self, token: str, key, now: float) -> dict:
        try:
            return jwt.decode(token, key, algorithms=[ALGORITHM], audience=self._accepted,
                              leeway=LEEWAY_SECONDS,
                              options={"require": ["exp", "nbf", "iat", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise TokenError("The access token has expired (its 'exp' is in the past). Get a new token.") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("The access token is not yet valid (its 'nbf' or 'iat' is in the future).") from None
        except jwt.InvalidAudienceError:
            audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
            raise TokenError(f"The access token has been obtained for wrong audience or resource "
                             f"'{audience}'. It should exactly match one of the allowed audiences "
                             f"{self._accepted[:2]}.") from None
        except jwt.InvalidSignatureError:
            raise TokenError("The access token's signature is invalid.") from None
        except jwt.MissingRequiredClaimError as error:
            raise TokenError(f"The access token has no '{error.claim}' claim.") from None
        except jwt.InvalidTokenError as error:
            raise TokenError(f"The access token is invalid: {error}.") from None

    def _tenant_for(self, claims: dict, own: bool) -> Tenant:
        issuer = normalize_issuer(str(claims["iss"]))
        tid = str(claims.get("tid") or "").lower()
        tenants = self._tenant_table()
        if own:
            tenant = tenants.get(tid)
            if tenant is None or tenant.issuer is not None or issuer not in self.audience.own_issuers(tid):
                raise TokenError(f"The access token's issuer '{issuer}' does not match its tenant '{tid}'.")
            return tenant
        matches = [t for t in tenants.values() if t.issuer and normalize_issuer(t.issuer) == issuer
                   and (not tid or t.id == tid)]
        if len(matches) != 1:
            raise TokenError(f"No tenant of this server is registered for issuer '{issuer}'"
                             + (f" and tenant '{tid}'." if tid else "."))
        return matches[0]

    def _tenant_table(self) -> dict[str, Tenant]:
        if time.monotonic() - self._tenants_at > TENANT_CACHE_SECONDS:
            with self.store.read() as tx:
                self._tenants = {t.id: t for t in tx.tenants()}
            self._tenants_at = time.monotonic()
        return self._tenants

    def forget_tenants(self) -> None:
        self._tenants_at = 0.0

    def _check_principal(self, caller: Caller) -> None:
        """Own principals must still exist: a deleted one's tokens stop within PRINCIPAL_CACHE_SECONDS."""
        if not caller.issuer or self.external.trusts(caller.issuer):
            return
        exists, checked = self._principals.get(caller.object_id, (False, 0.0))
        if time.monotonic() - checked > PRINCIPAL_CACHE_SECONDS:
            with self.store.read() as tx:
                exists = tx.principal(caller.object_id) is not None
            self._principals[caller.object_id] = (exists, time.monotonic())
        if not exists:
            raise TokenError("The principal this access token was issued to no longer exists.")

    def forget_principal(self, object_id: str) -> None:
        self._principals.pop(object_id, None)

    def _check_session(self, session_id: str) -> None:
        """A user's token stops with its sign-in session (ended by sign-out, or expired)."""
        if not session_id:
            return
        active, checked = self._sessions.get(session_id, (False, 0.0))
        if time.monotonic() - checked > SESSION_CACHE_SECONDS:
            with self.store.read() as tx:
                session = tx.session(session_id)
            active = session is not None and session.active(time.time())
            with self._lock:
                if len(self._sessions) > _MAX_CACHED_TOKENS:
                    self._sessions.clear()
                self._sessions[session_id] = (active, time.monotonic())
        if not active:
            raise TokenError("The sign-in session this access token was issued in has ended (signed out or "
                             "expired). Sign in again.")

    def forget_session(self, session_id: str) -> None:
        """On this node, at once: the session has ended."""
        self._sessions[session_id] = (False, time.monotonic())
