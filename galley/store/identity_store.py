"""Identity's records over SQLAlchemy Core: tenants, subscriptions, principals, their secret
hashes and the token signing keys. One transaction per `read()` / `write()`, like SqlStore."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..domain.identity import Principal, SecretRecord, Subscription, Tenant
from .sql_store import SqlStore, SqlTransaction
from .tables import principal_secrets, principals, signing_keys, subscriptions, tenants

_TN = tenants.c
_SB = subscriptions.c
_PR = principals.c
_SC = principal_secrets.c
_SK = signing_keys.c


def _tenant(row) -> Tenant:
    m = row._mapping
    return Tenant(id=m["id"], display_name=m["display_name"], issuer=m["issuer"], is_home=bool(m["is_home"]))


def _subscription(row) -> Subscription:
    m = row._mapping
    return Subscription(id=m["id"], tenant_id=m["tenant_id"], display_name=m["display_name"], state=m["state"])


def _principal(row) -> Principal:
    m = row._mapping
    return Principal(id=m["id"], app_id=m["app_id"], tenant_id=m["tenant_id"], display_name=m["display_name"],
                     kind=m["kind"], failed_sign_ins=m["failed_sign_ins"] or 0,
                     locked_until=m["locked_until"] or 0.0)


def _secret(row) -> SecretRecord:
    m = row._mapping
    return SecretRecord(id=m["id"], principal_id=m["principal_id"], secret_hash=m["secret_hash"],
                        hint=m["hint"], created_at=m["created_at"], expires_at=m["expires_at"])


class IdentityTransaction:
    def __init__(self, connection: Connection) -> None:
        self.c = connection

    def lock(self, name: str) -> None:
        SqlTransaction(self.c).lock(name)

    # -- tenants ---------------------------------------------------------------------------
    def tenants(self) -> list[Tenant]:
        return [_tenant(r) for r in self.c.execute(select(tenants).order_by(_TN.created_at, _TN.id))]

    def tenant(self, tenant_id: str) -> Tenant | None:
        row = self.c.execute(select(tenants).where(_TN.id == tenant_id.lower())).first()
        return _tenant(row) if row else None

    def add_tenant(self, tenant: Tenant, created_at: str) -> None:
        self.c.execute(insert(tenants).values(id=tenant.id, display_name=tenant.display_name,
                                              issuer=tenant.issuer, is_home=tenant.is_home,
                                              created_at=created_at))

    # -- subscriptions ---------------------------------------------------------------------
    def subscriptions(self, tenant_id: str | None = None) -> list[Subscription]:
        query = select(subscriptions).order_by(_SB.created_at, _SB.id)
        if tenant_id is not None:
            query = query.where(_SB.tenant_id == tenant_id.lower())
        return [_subscription(r) for r in self.c.execute(query)]

    def subscription(self, subscription_id: str) -> Subscription | None:
        row = self.c.execute(select(subscriptions).where(_SB.id == subscription_id.lower())).first()
        return _subscription(row) if row else None

    def add_subscription(self, subscription: Subscription, created_at: str) -> None:
        self.c.execute(insert(subscriptions).values(id=subscription.id, tenant_id=subscription.tenant_id,
                                                    display_name=subscription.display_name,
                                                    state=subscription.state, created_at=created_at))

    # -- principals and secrets ------------------------------------------------------------
    def principals(self, tenant_id: str | None = None) -> list[Principal]:
        query = select(principals).order_by(_PR.created_at, _PR.id)
        if tenant_id is not None:
            query = query.where(_PR.tenant_id == tenant_id.lower())
        return [_principal(r) for r in self.c.execute(query)]

    def principal_by_app_id(self, app_id: str) -> Principal | None:
        row = self.c.execute(select(principals).where(_PR.app_id == app_id.lower())).first()
        return _principal(row) if row else None

    def principal(self, object_id: str) -> Principal | None:
        row = self.c.execute(select(principals).where(_PR.id == object_id.lower())).first()
        return _principal(row) if row else None

    def add_principal(self, principal: Principal, created_at: str) -> None:
        self.c.execute(insert(principals).values(id=principal.id, app_id=principal.app_id,
                                                 tenant_id=principal.tenant_id,
                                                 display_name=principal.display_name, kind=principal.kind,
                                                 failed_sign_ins=0, locked_until=0.0, created_at=created_at))

    def delete_principal(self, object_id: str) -> None:
        self.c.execute(delete(principal_secrets).where(_SC.principal_id == object_id))
        self.c.execute(delete(principals).where(_PR.id == object_id))

    def set_sign_in_state(self, object_id: str, failed: int, locked_until: float) -> None:
        self.c.execute(update(principals).where(_PR.id == object_id)
                       .values(failed_sign_ins=failed, locked_until=locked_until))

    def secrets(self, principal_id: str) -> list[SecretRecord]:
        return [_secret(r) for r in self.c.execute(
            select(principal_secrets).where(_SC.principal_id == principal_id).order_by(_SC.created_at))]

    def add_secret(self, record: SecretRecord) -> None:
        self.c.execute(insert(principal_secrets).values(
            id=record.id, principal_id=record.principal_id, secret_hash=record.secret_hash,
            hint=record.hint, created_at=record.created_at, expires_at=record.expires_at))

    def delete_secrets(self, principal_id: str) -> None:
        self.c.execute(delete(principal_secrets).where(_SC.principal_id == principal_id))

    # -- signing keys ----------------------------------------------------------------------
    def signing_keys(self) -> list[dict]:
        return [dict(r._mapping) for r in self.c.execute(select(signing_keys).order_by(_SK.created_at))]

    def add_signing_key(self, kid: str, private_pem: str, created_at: float) -> None:
        self.c.execute(insert(signing_keys).values(kid=kid, private_pem=private_pem, created_at=created_at))

    def retire_signing_keys(self, except_kid: str, retired_at: float, valid_until: float) -> None:
        self.c.execute(update(signing_keys).where(_SK.kid != except_kid, _SK.retired_at.is_(None))
                       .values(retired_at=retired_at, valid_until=valid_until))

    def drop_signing_keys_before(self, moment: float) -> None:
        self.c.execute(delete(signing_keys).where(_SK.valid_until.is_not(None), _SK.valid_until < moment))


class IdentityStore:
    """Shares the resource store's engine (and so its SQLite transaction rules)."""

    transaction = IdentityTransaction

    def __init__(self, engine: Engine) -> None:
        self._sql = SqlStore(engine)

    @contextmanager
    def read(self) -> Iterator:
        with self._sql.read() as tx:
            yield self.transaction(tx.c)

    @contextmanager
    def write(self) -> Iterator:
        with self._sql.write() as tx:
            yield self.transaction(tx.c)
