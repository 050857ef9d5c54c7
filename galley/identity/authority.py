"""Galley's authority: tenants, subscriptions and service principals, the client-credentials
grant, and the first start's set-up (a home tenant, a subscription, an administrator).

Who may manage what (until role-based access arrives): a principal manages its own tenant (its
subscriptions and principals); principals of the home tenant, the installation's administrators,
manage every tenant and alone create tenants, rotate keys and run store upkeep.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..domain import identity as rules
from ..domain.access import OWNER, Assignment
from ..domain.errors import ArmError, Conflict, InvalidParameter, NotFound
from ..domain.identity import Caller, Principal, SecretRecord, Subscription, Tenant
from ..domain.names import check_subscription_id
from ..domain.resource import iso, utc_now
from ..store.access_store import AccessStore as IdentityStore
from . import secrets
from .keys import KeyRing
from .tokens import Tokens, resource_of_scope

log = logging.getLogger("galley.identity")

CREDENTIALS_FILE = "credentials.json"


def _write_private_json(path: Path, document: dict) -> None:
    """Atomically, mode 0600, on disk before returning."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


class OAuthError(Exception):
    """An OAuth2 error response: `{"error", "error_description", "error_codes", ...}`."""

    def __init__(self, status: int, error: str, description: str, code: int,
                 retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.code = code
        self.retry_after = retry_after

    def to_body(self) -> dict:
        return {"error": self.error, "error_description": self.description, "error_codes": [self.code],
                "timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())}


class AuthorizationFailed(ArmError):
    code = "AuthorizationFailed"
    status = 403


@dataclass(frozen=True)
class NewSecret:
    principal: Principal
    secret: str
    expires_at: float | None


def _guid(value: str | None, what: str) -> str:
    if value is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(value.strip())).lower()
    except ValueError:
        raise InvalidParameter(f"'{value}' is not a valid {what}: expected a GUID such as "
                               f"{uuid.uuid4()}.", target=what) from None


def _display_name(value: str | None, default: str) -> str:
    name = (value or default).strip()
    if not name or len(name) > 256 or any(ord(ch) < 32 for ch in name):
        raise InvalidParameter("The display name must be 1 to 256 printable characters.", target="displayName")
    return name


def _expiry(years: float | None, end_date: str | None, default_years: float | None) -> float | None:
    if end_date:
        try:
            moment = dt.datetime.fromisoformat(end_date.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
            expires = moment.astimezone(dt.timezone.utc).timestamp()  # past year 9999 in UTC: refused
        except (ValueError, OverflowError):
            raise InvalidParameter(f"endDate '{end_date}' is not an ISO 8601 date within the years 1 to 9999 "
                                   "(in UTC).", target="endDate") from None
    elif years is not None:
        if not 0 < years <= 100:
            raise InvalidParameter("years must be more than 0 and at most 100.", target="years")
        expires = time.time() + years * 365.25 * 86400
    elif default_years is None:
        return None
    else:
        expires = time.time() + default_years * 365.25 * 86400
    if expires <= time.time():
        raise InvalidParameter("The secret's end date is in the past.", target="endDate")
    return expires


class Authority:
    def __init__(self, store: IdentityStore, keys: KeyRing, tokens: Tokens, access=None) -> None:
        self.store = store
        self.keys = keys
        self.tokens = tokens
        self.access = access  # AccessService: makes the Owner assignments of new subscriptions

    # -- first start ---------------------------------------------------------------------------
    def bootstrap(self, home: Path, server_url: str, ca_bundle: Path | None,
                  subscription_id: str | None = None) -> Path | None:
        """On an empty database: the home tenant, the "Galley" subscription and an administrator,
        whose secret goes once to $GALLEY_HOME/credentials.json (0600). Returns that file's path
        when this start wrote it."""
        self.keys.ensure()
        path = home / CREDENTIALS_FILE
        with self.store.write() as tx:
            tx.lock("identity/bootstrap")
            if tx.tenants():
                return None
            now = iso(utc_now())
            tenant = Tenant(id=str(uuid.uuid4()), display_name="Galley", is_home=True)
            subscription = Subscription(id=_guid(subscription_id, "subscriptionId") if subscription_id
                                        else str(uuid.uuid4()), tenant_id=tenant.id, display_name="Galley")
            tx.add_tenant(tenant, now)
            tx.add_subscription(subscription, now)
            created = self._add_principal(tx, tenant.id, "galley-admin", None)
            tx.add_assignment(Assignment(id=str(uuid.uuid4()), scope=f"/subscriptions/{subscription.id}",
                                         role_definition_id=OWNER.id, principal_id=created.principal.id,
                                         created_on=now))
            # Written before the set-up commits: a crash in between leaves an empty database, and
            # the next start makes everything (and this file) anew; the secret is never lost.
            _write_private_json(path, {
                "server": server_url.rstrip("/"), "tenantId": tenant.id, "subscriptionId": subscription.id,
                "clientId": created.principal.app_id, "clientSecret": created.secret,
                "caBundle": str(ca_bundle) if ca_bundle else None})
        if self.access is not None:
            self.access.forget()
        return path

    # -- tenants ---------------------------------------------------------------------------------
    def list_tenants(self, caller: Caller) -> list[Tenant]:
        with self.store.read() as tx:
            return [t for t in tx.tenants() if t.id == caller.tenant_id]

    def all_tenants(self, caller: Caller) -> list[Tenant]:
        with self.store.read() as tx:
            return [t for t in tx.tenants() if caller.may_manage_tenant(t.id)]

    def create_tenant(self, caller: Caller, display_name: str | None, issuer: str | None,
                      tenant_id: str | None) -> Tenant:
        if not caller.home:
            raise AuthorizationFailed(f"The client '{caller.object_id}' of tenant '{caller.tenant_id}' may "
                                      "not create tenants: only principals of the home tenant may.")
        if issuer is not None and not (issuer.startswith("https://") or issuer.startswith("http://")):
            raise InvalidParameter(f"issuer '{issuer}' must be an https URL.", target="issuer")
        tenant = Tenant(id=_guid(tenant_id, "tenantId"), display_name=_display_name(display_name, "Tenant"),
                        issuer=issuer.rstrip("/") if issuer else None)
        with self.store.write() as tx:
            if tx.tenant(tenant.id) is not None:
                raise Conflict(f"Tenant '{tenant.id}' already exists.", target="tenantId")
            tx.add_tenant(tenant, iso(utc_now()))
        self.tokens.forget_tenants()
        return tenant

    def _managed_tenant(self, tx, caller: Caller, tenant_id: str | None) -> Tenant:
        tenant_id = (tenant_id or caller.tenant_id).lower()
        tenant = tx.tenant(tenant_id)
        if tenant is None or not caller.may_manage_tenant(tenant_id):
            raise NotFound(f"Tenant '{tenant_id}' does not exist or is not yours to manage.",
                           target="tenantId", code="TenantNotFound")
        return tenant

    # -- subscriptions ---------------------------------------------------------------------------
    def list_subscriptions(self, caller: Caller) -> list[Subscription]:
        """The subscriptions where the caller holds some role (in its tenant or another)."""
        with_roles = self.access.subscriptions_with_roles(caller) if self.access else None
        with self.store.read() as tx:
            if with_roles is None:
                return tx.subscriptions(caller.tenant_id)
            return [s for s in tx.subscriptions() if s.id in with_roles]

    def subscription(self, subscription_id: str) -> Subscription | None:
        with self.store.read() as tx:
            return tx.subscription(subscription_id)

    def create_subscription(self, caller: Caller, display_name: str | None, tenant_id: str | None,
                            subscription_id: str | None) -> Subscription:
        if subscription_id is not None:
            check_subscription_id(subscription_id)
        with self.store.write() as tx:
            tenant = self._managed_tenant(tx, caller, tenant_id)
            subscription = Subscription(id=_guid(subscription_id, "subscriptionId"), tenant_id=tenant.id,
                                        display_name=_display_name(display_name, "Subscription"))
            if tx.subscription(subscription.id) is not None:
                raise Conflict(f"Subscription '{subscription.id}' already exists.", target="subscriptionId")
            tx.add_subscription(subscription, iso(utc_now()))
        # Its creator owns it, as in Azure (a home administrator making one for another tenant can
        # then give that tenant's principals their roles).
        if self.access is not None:
            self.access.grant(caller, caller.object_id, OWNER, f"/subscriptions/{subscription.id}")
        return subscription

    # -- service principals ----------------------------------------------------------------------
    def _add_principal(self, tx, tenant_id: str, display_name: str, expires_at: float | None) -> NewSecret:
        principal = Principal(id=str(uuid.uuid4()), app_id=str(uuid.uuid4()), tenant_id=tenant_id,
                              display_name=display_name)
        tx.add_principal(principal, iso(utc_now()))
        secret = self._add_secret(tx, principal, expires_at)
        return NewSecret(principal, secret, expires_at)

    @staticmethod
    def _add_secret(tx, principal: Principal, expires_at: float | None) -> str:
        secret = secrets.new_secret()
        tx.add_secret(SecretRecord(id=str(uuid.uuid4()), principal_id=principal.id,
                                   secret_hash=secrets.hash_secret(secret), hint=secrets.hint_of(secret),
                                   created_at=iso(utc_now()), expires_at=expires_at))
        return secret

    def create_service_principal(self, caller: Caller, display_name: str | None, tenant_id: str | None,
                                 years: float | None = None, end_date: str | None = None) -> NewSecret:
        name = _display_name(display_name, f"galley-sp-{dt.datetime.now():%Y-%m-%d-%H-%M-%S}")
        expires = _expiry(years, end_date, default_years=1)
        with self.store.write() as tx:
            tenant = self._managed_tenant(tx, caller, tenant_id)
            if tenant.issuer is not None:
                raise InvalidParameter(f"Tenant '{tenant.id}' signs in through issuer '{tenant.issuer}'; "
                                       "create its principals there.", target="tenantId")
            return self._add_principal(tx, tenant.id, name, expires)

    def list_principals(self, caller: Caller, tenant_id: str | None) -> list[Principal]:
        with self.store.read() as tx:
            if tenant_id is None:
                found = [p for p in tx.principals() if caller.may_manage_tenant(p.tenant_id)]
            else:
                found = tx.principals(self._managed_tenant(tx, caller, tenant_id).id)
        return [p for p in found if p.kind == rules.SERVICE_PRINCIPAL]  # users: identity/users.py

    def _managed_principal(self, tx, caller: Caller, id_or_app_id: str) -> Principal:
        principal = tx.principal_by_app_id(id_or_app_id) or tx.principal(id_or_app_id)
        if (principal is None or principal.kind != rules.SERVICE_PRINCIPAL  # users: identity/users.py
                or not caller.may_manage_tenant(principal.tenant_id)):
            raise NotFound(f"Service principal '{id_or_app_id}' does not exist or is not yours to manage.",
                           target="id", code="PrincipalNotFound")
        return principal

    def principal_secrets(self, caller: Caller, id_or_app_id: str) -> tuple[Principal, list[SecretRecord]]:
        with self.store.read() as tx:
            principal = self._managed_principal(tx, caller, id_or_app_id)
            return principal, tx.secrets(principal.id)

    def delete_principal(self, caller: Caller, id_or_app_id: str) -> Principal:
        with self.store.write() as tx:
            principal = self._managed_principal(tx, caller, id_or_app_id)
            if principal.id == caller.object_id:
                raise Conflict("A service principal cannot delete itself; sign in as another one.",
                               target="id")
            remove_principal(tx, principal.id)
        self.tokens.forget_principal(principal.id)
        if self.access is not None:
            self.access.forget()
        return principal

    def reset_credential(self, caller: Caller, id_or_app_id: str, append: bool = False,
                         years: float | None = None, end_date: str | None = None) -> NewSecret:
        expires = _expiry(years, end_date, default_years=1)
        with self.store.write() as tx:
            principal = self._managed_principal(tx, caller, id_or_app_id)
            if not append:
                tx.delete_secrets(principal.id)
            tx.set_sign_in_state(principal.id, 0, 0.0)
            return NewSecret(principal, self._add_secret(tx, principal, expires), expires)

    # -- the client-credentials grant ------------------------------------------------------------
    def client_credentials(self, tenant_in_path: str, client_id: str, client_secret: str, scope: str,
                           origin: str) -> dict:
        """The token endpoint's work. Wrong, expired or unknown credentials never yield a token."""
        if not client_id or not client_secret:
            raise OAuthError(400, "invalid_request", "AADSTS900144: The request body must contain "
                             "'client_id' and 'client_secret'.", 900144)
        with self.store.read() as tx:
            tenant = tx.tenant(tenant_in_path)
            principal = tx.principal_by_app_id(client_id)
            stored = tx.secrets(principal.id) if principal else []
        if tenant is None:
            secrets.verify_secret(client_secret, secrets.DECOY_HASH)
            raise OAuthError(400, "invalid_request", f"AADSTS90002: Tenant '{tenant_in_path}' not found.", 90002)
        now = time.time()
        if principal is None or principal.tenant_id != tenant.id or principal.kind != rules.SERVICE_PRINCIPAL:
            secrets.verify_secret(client_secret, secrets.DECOY_HASH)
            raise OAuthError(400, "invalid_client", f"AADSTS700016: Application with identifier "
                             f"'{client_id}' was not found in the directory '{tenant.id}'.", 700016)
        wait = rules.locked_for(principal, now)
        if wait > 0:
            raise OAuthError(400, "invalid_client", f"AADSTS50053: The client '{client_id}' is locked out "
                             f"after repeated sign-ins with a wrong secret. Try again in {int(wait) + 1} "
                             "seconds.", 50053, retry_after=int(wait) + 1)
        matched = next((s for s in stored if secrets.verify_secret(client_secret, s.secret_hash)), None)
        if matched is None:
            self._record_failure(principal, now)
            raise OAuthError(401, "invalid_client", f"AADSTS7000215: Invalid client secret provided for "
                             f"'{client_id}'. Ensure the secret being sent is the client secret value, "
                             "not the client secret ID.", 7000215)
        if matched.expired(now):
            raise OAuthError(401, "invalid_client", f"AADSTS7000222: The provided client secret keys "
                             f"for app '{client_id}' are expired. Create a new secret "
                             "(galley ad sp credential reset).", 7000222)
        if principal.failed_sign_ins or principal.locked_until:
            with self.store.write() as tx:
                tx.set_sign_in_state(principal.id, 0, 0.0)
        resource = resource_of_scope(scope or "")
        if scope and resource is None:
            raise OAuthError(400, "invalid_scope", f"AADSTS1002012: The provided value for scope "
                             f"'{scope}' is not valid. Client credential flows must have a scope value "
                             "with /.default suffixed to the resource identifier.", 1002012)
        token, expires_in = self.tokens.issue(principal, origin, resource)
        return {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                "access_token": token}

    def _record_failure(self, principal: Principal, now: float) -> None:
        with self.store.write() as tx:
            current = tx.principal(principal.id)
            if current is None:
                return
            failed, locked_until = rules.after_failure(current, now)
            tx.set_sign_in_state(principal.id, failed, locked_until)
        if locked_until > now:
            log.warning("client %s locked out for %.0f s after repeated wrong secrets",
                        principal.app_id, locked_until - now)


def remove_principal(tx, principal_id: str) -> None:
    """A principal (service principal or user) gone from the directory, in `tx`: its record, its
    role assignments and its group memberships."""
    tx.delete_principal(principal_id)
    tx.delete_assignments_of(principal_id)
    for group_id in tx.groups_of(principal_id):
        tx.remove_member(group_id, principal_id)
