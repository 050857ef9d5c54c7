"""Users: people who sign in with a name and a password (the portal's sign-in page, the password
grant), as Entra ID's users are.

A user is a principal (a `principals` row of kind "User", so role assignments, groups and the
token checks treat it like any other) plus a `users` row: its user principal name
`name@{tenant id}.galley.local` (the tenant's default domain) and its password, kept only as
identity/secrets.py's slow salted scrypt hash and never logged. Users manage no directory: what
they may do comes from their role assignments alone (domain.identity.Caller.may_manage_tenant).

Checking a password costs the same for an unknown name as for a wrong password, and both get the
same answer; after LOCKOUT_THRESHOLD wrong passwords in a row for a name (known or not), that name
is locked out for LOCKOUT_SECONDS.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from ..domain import identity as rules
from ..domain.errors import Conflict, InvalidParameter, NotFound
from ..domain.identity import USER, Caller, Principal, Tenant
from ..domain.resource import iso, utc_now
from ..store.user_store import UserNameTaken, UserRecord, UserStore
from . import secrets
from .authority import OAuthError, remove_principal

log = logging.getLogger("galley.identity")

DOMAIN_SUFFIX = ".galley.local"
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?$")
MIN_PASSWORD, MAX_PASSWORD = 8, 256
FAILURES_KEPT_SECONDS = 15 * 60  # wrong passwords older than this are forgotten
WRONG_CREDENTIALS = OAuthError(400, "invalid_grant", "AADSTS50126: Error validating credentials due to "
                               "invalid username or password.", 50126)


def tenant_domain(tenant_id: str) -> str:
    """A tenant's default domain, as GET /tenants shows it."""
    return f"{tenant_id}{DOMAIN_SUFFIX}"


def check_password(password: object) -> str:
    """Azure's rule: 8 to 256 characters, with three of lower case, upper case, digits, symbols."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidParameter(f"The password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long.",
                               target="password", code="PasswordComplexity")
    kinds = (any(c.islower() for c in password), any(c.isupper() for c in password),
             any(c.isdigit() for c in password), any(not c.isalnum() for c in password))
    if sum(kinds) < 3:
        raise InvalidParameter("The password must mix at least three of: lower-case letters, upper-case "
                               "letters, digits and symbols.", target="password", code="PasswordComplexity")
    return password


@dataclass(frozen=True)
class User:
    principal: Principal
    user_principal_name: str

    @property
    def id(self) -> str:
        return self.principal.id

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def name(self) -> str:
        return self.user_principal_name.split("@", 1)[0]

    def to_graph(self) -> dict:
        """As Microsoft Graph shows a user (az ad user show)."""
        return {"@odata.type": "#microsoft.graph.user", "id": self.id, "displayName": self.principal.display_name,
                "userPrincipalName": self.user_principal_name, "mailNickname": self.name,
                "accountEnabled": True, "userType": "Member", "objectType": USER, "tenantId": self.tenant_id,
                "businessPhones": [], "givenName": None, "surname": None, "jobTitle": None, "mail": None,
                "mobilePhone": None, "officeLocation": None, "preferredLanguage": None}


def _user_exists(upn: str) -> Conflict:
    return Conflict(f"A user named '{upn}' exists already.", target="userPrincipalName", code="UserExists")


class Users:
    def __init__(self, store: UserStore, tokens, access=None) -> None:
        self.store = store
        self.tokens = tokens  # forgets a deleted user at once
        self.access = access

    # -- managing users --------------------------------------------------------------------
    def create(self, caller: Caller, name: str | None, password: object, display_name: str | None = None,
               tenant_id: str | None = None, user_principal_name: str | None = None) -> User:
        with self.store.write() as tx:
            tenant = self._tenant_for_new_user(tx, caller, tenant_id, user_principal_name)
            if user_principal_name:
                name = user_principal_name.split("@", 1)[0]
            if not isinstance(name, str) or not NAME.match(name):
                raise InvalidParameter(f"The user name '{name}' must be 1 to 64 letters, digits, '.', '_' or "
                                       "'-', starting and ending with a letter or digit.", target="name")
            check_password(password)
            upn = f"{name}@{tenant_domain(tenant.id)}".lower()
            if tx.user_by_name(upn) is not None:
                raise _user_exists(upn)
            shown = (display_name or name).strip()
            if not shown or len(shown) > 256 or any(ord(ch) < 32 for ch in shown):
                raise InvalidParameter("The display name must be 1 to 256 printable characters.",
                                       target="displayName")
            object_id = str(uuid.uuid4())
            # A user has no client id: its app_id is its object id, which no client credential matches.
            principal = Principal(id=object_id, app_id=object_id, tenant_id=tenant.id, display_name=shown, kind=USER)
            now = iso(utc_now())
            tx.add_principal(principal, now)
            try:
                tx.add_user(UserRecord(id=object_id, tenant_id=tenant.id, user_principal_name=upn,
                                       password_hash=secrets.hash_secret(password), created_at=now))
            except UserNameTaken:
                raise _user_exists(upn) from None
        return User(principal, upn)

    def _tenant_for_new_user(self, tx, caller: Caller, tenant_id: str | None, upn: str | None) -> Tenant:
        if upn:
            _, _, domain = upn.partition("@")
            found = self._tenant_of_domain(tx, domain)
            if found is None:
                raise InvalidParameter(f"'{upn}' is not in a domain of this server: user principal names "
                                       f"end with '@<tenant id>{DOMAIN_SUFFIX}'.", target="userPrincipalName")
            tenant_id = tenant_id or found.id
            if found.id != tenant_id.lower():
                raise InvalidParameter(f"'{upn}' is not in tenant '{tenant_id}'.", target="userPrincipalName")
        tenant_id = (tenant_id or caller.tenant_id).lower()
        tenant = tx.tenant(tenant_id)
        if tenant is None or not caller.may_manage_tenant(tenant_id):
            raise NotFound(f"Tenant '{tenant_id}' does not exist or is not yours to manage.",
                           target="tenantId", code="TenantNotFound")
        if tenant.issuer is not None:
            raise InvalidParameter(f"Tenant '{tenant.id}' signs in through issuer '{tenant.issuer}'; "
                                   "create its users there.", target="tenantId")
        return tenant

    @staticmethod
    def _tenant_of_domain(tx, domain: str) -> Tenant | None:
        domain = domain.lower()
        if not domain.endswith(DOMAIN_SUFFIX):
            return None
        return tx.tenant(domain[: -len(DOMAIN_SUFFIX)])

    def list(self, caller: Caller, tenant_id: str | None = None) -> list[User]:
        with self.store.read() as tx:
            records = tx.users(tenant_id.lower() if tenant_id else None)
            return [self._user(tx, r) for r in records if caller.may_read_tenant(r.tenant_id)]

    def get(self, caller: Caller, id_or_name: str) -> User:
        with self.store.read() as tx:
            return self._user(tx, self._readable(tx, caller, id_or_name))

    def delete(self, caller: Caller, id_or_name: str) -> User:
        with self.store.write() as tx:
            record = self._readable(tx, caller, id_or_name)
            if not caller.may_manage_tenant(record.tenant_id):
                raise NotFound(f"User '{id_or_name}' does not exist or is not yours to manage.",
                               target="id", code="UserNotFound")
            user = self._user(tx, record)
            tx.delete_user(record.id)
            remove_principal(tx, record.id)
        self.tokens.forget_principal(record.id)
        if self.access is not None:
            self.access.forget()
        return user

    def _readable(self, tx, caller: Caller, id_or_name: str) -> UserRecord:
        """By object id, user principal name, or bare name in the caller's tenant."""
        key = id_or_name.strip().lower()
        record = tx.user(key) or tx.user_by_name(key if "@" in key else f"{key}@{tenant_domain(caller.tenant_id)}")
        if record is None or not caller.may_read_tenant(record.tenant_id):
            raise NotFound(f"User '{id_or_name}' does not exist or is not yours to read.",
                           target="id", code="UserNotFound")
        return record

    @staticmethod
    def _user(tx, record: UserRecord) -> User:
        return User(tx.principal(record.id), record.user_principal_name)

    def by_id(self, object_id: str) -> User | None:
        with self.store.read() as tx:
            record = tx.user(object_id)
            return self._user(tx, record) if record else None

    # -- checking a password ---------------------------------------------------------------
    def authenticate(self, tenant: Tenant | None, username: str, password: str) -> User:
        """The user `username` names (a bare name in `tenant`, or else the home tenant, or a user
        principal name), if `password` is theirs. Raises WRONG_CREDENTIALS, or a lock-out.

        An unknown name takes the same path as a known one (a hash checked, a failure counted,
        a lock-out after LOCKOUT_THRESHOLD), so neither the answer nor its time tells them apart."""
        now = time.time()
        with self.store.read() as tx:
            name = self._sign_in_name(tx, tenant, username)
            record = tx.user_by_name(name) if name else None
            principal = tx.principal(record.id) if record else None
            failed, locked_until = tx.sign_in_failures(name) if name else (0, 0.0)
        if locked_until > now:
            wait = int(locked_until - now) + 1
            raise OAuthError(400, "invalid_grant", "AADSTS50053: The account is locked after too many sign-ins "
                             f"with a wrong password. Try again in {wait} seconds.", 50053, retry_after=wait)
        known = record is not None and principal is not None
        if not secrets.verify_secret(password, record.password_hash if known else secrets.DECOY_HASH) or not known:
            if name:
                self._count_failure(name, failed, now)
            raise WRONG_CREDENTIALS
        if failed:
            with self.store.write() as tx:
                tx.clear_sign_in_failures(name)
        return User(principal, record.user_principal_name)

    def _count_failure(self, name: str, failed: int, now: float) -> None:
        failed += 1
        locked_until = 0.0
        if failed >= rules.LOCKOUT_THRESHOLD:
            failed, locked_until = 0, now + rules.LOCKOUT_SECONDS
            log.warning("sign-in name locked out for %.0f s after repeated wrong passwords", rules.LOCKOUT_SECONDS)
        with self.store.write() as tx:
            tx.set_sign_in_failures(name, failed, locked_until, now, forget_before=now - FAILURES_KEPT_SECONDS)

    @staticmethod
    def _sign_in_name(tx, tenant: Tenant | None, username: str) -> str | None:
        """The user principal name a sign-in name stands for (whether or not such a user exists)."""
        username = (username or "").strip().lower()
        if not username or len(username) > 320:
            return None
        if "@" in username:
            if tenant is not None and not username.endswith("@" + tenant_domain(tenant.id)):
                return None
            return username
        if tenant is None:
            tenant = next((t for t in tx.tenants() if t.is_home), None)
            if tenant is None:
                return None
        return f"{username}@{tenant_domain(tenant.id)}"
