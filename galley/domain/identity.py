"""Identity's entities and rules: tenants, subscriptions, service principals, sign-in lock-out.
Plain data and decisions; the authority (galley/identity) does the storing, hashing and signing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .resource import iso

SERVICE_PRINCIPAL = "ServicePrincipal"
USER = "User"
ENABLED = "Enabled"

# Consecutive wrong secrets for one client before it is locked out, and for how long.
LOCKOUT_THRESHOLD = 5
LOCKOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    issuer: str | None = None  # an external OIDC issuer whose tokens speak for this tenant
    is_home: bool = False

    def to_arm(self) -> dict:
        """As `GET /tenants` shows a tenant."""
        return {"id": f"/tenants/{self.id}", "tenantId": self.id, "displayName": self.display_name,
                "tenantCategory": "Home", "countryCode": "US", "domains": [f"{self.id}.galley.local"],
                "defaultDomain": f"{self.id}.galley.local", "tenantType": "AAD",
                **({"issuer": self.issuer} if self.issuer else {})}


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    display_name: str
    state: str = ENABLED

    def to_arm(self) -> dict:
        """As `GET /subscriptions` shows a subscription."""
        return {"id": f"/subscriptions/{self.id}", "authorizationSource": "RoleBased",
                "managedByTenants": [], "subscriptionId": self.id, "tenantId": self.tenant_id,
                "displayName": self.display_name, "state": self.state,
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
                                         "quotaId": "Galley_2026-01-01", "spendingLimit": "Off"}}


@dataclass(frozen=True)
class Principal:
    id: str  # object id
    app_id: str  # client id
    tenant_id: str
    display_name: str
    kind: str = SERVICE_PRINCIPAL
    failed_sign_ins: int = 0
    locked_until: float = 0.0

    def to_wire(self) -> dict:
        return {"id": self.id, "appId": self.app_id, "appOwnerOrganizationId": self.tenant_id,
                "displayName": self.display_name, "servicePrincipalType": "Application",
                "objectType": self.kind}


@dataclass(frozen=True)
class SecretRecord:
    id: str
    principal_id: str
    secret_hash: str
    hint: str
    created_at: str
    expires_at: float | None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def to_wire(self) -> dict:
        end = (iso(dt.datetime.fromtimestamp(self.expires_at, dt.timezone.utc))
               if self.expires_at is not None else None)
        return {"keyId": self.id, "hint": self.hint, "startDateTime": self.created_at, "endDateTime": end}


def locked_for(principal: Principal, now: float) -> float:
    """Seconds the client must still wait before a sign-in is even tried (0: not locked)."""
    return max(0.0, principal.locked_until - now)


def after_failure(principal: Principal, now: float) -> tuple[int, float]:
    """(failed_sign_ins, locked_until) after one more wrong secret."""
    failures = principal.failed_sign_ins + 1
    if failures >= LOCKOUT_THRESHOLD:
        return 0, now + LOCKOUT_SECONDS
    return failures, principal.locked_until


@dataclass(frozen=True)
class Caller:
    """Who a verified token speaks for."""

    tenant_id: str
    object_id: str
    app_id: str | None
    issuer: str
    home: bool = False  # a principal of the installation's home tenant (its administrators)
    user: bool = False  # a person signed in with a password (identity/users.py)
    user_principal_name: str | None = None  # a user's sign-in name

    @property
    def client_name(self) -> str:
        """Who refusals and the activity log name: a user by her name, else the client id."""
        return self.user_principal_name or self.app_id or self.object_id

    def may_manage_tenant(self, tenant_id: str) -> bool:
        """Users manage no directory (they act through their role assignments only), whatever
        their tenant: a Reader in the home tenant must not become an administrator."""
        return not self.user and (self.home or self.tenant_id == tenant_id.lower())

    def may_read_tenant(self, tenant_id: str) -> bool:
        """Its directory's users, principals and groups (to name them in role assignments)."""
        return self.may_manage_tenant(tenant_id) or self.tenant_id == tenant_id.lower()
