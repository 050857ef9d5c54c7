"""Users and sign-in state over SQLAlchemy Core: users' password hashes, sign-in sessions,
one-time authorization codes and refresh tokens. Its transactions can do all an AccessStore's can
(a user is a principal too, with role assignments and group memberships)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .access_store import AccessStore, AccessTransaction
from .tables import authorization_codes, refresh_tokens, sign_in_failures, sign_in_sessions, users

_US = users.c
_SF = sign_in_failures.c
_SS = sign_in_sessions.c
_AC = authorization_codes.c
_RT = refresh_tokens.c


class UserNameTaken(Exception):
    """A user with this principal name exists already."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    tenant_id: str
    user_principal_name: str
    password_hash: str
    created_at: str


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user_id: str
    tenant_id: str
    created_at: float
    expires_at: float
    ended_at: float | None

    def active(self, now: float) -> bool:
        return self.ended_at is None and self.expires_at > now


@dataclass(frozen=True)
class CodeRecord:
    code_hash: str
    session_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    expires_at: float
    redeemed_at: float | None


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    session_id: str
    client_id: str
    scope: str
    expires_at: float


def _user(row) -> UserRecord:
    return UserRecord(**{k: row._mapping[k] for k in UserRecord.__dataclass_fields__})


def _session(row) -> SessionRecord:
    return SessionRecord(**{k: row._mapping[k] for k in SessionRecord.__dataclass_fields__})


class UserTransaction(AccessTransaction):
    # -- users -----------------------------------------------------------------------------
    def users(self, tenant_id: str | None = None) -> list[UserRecord]:
        query = select(users).order_by(_US.user_principal_name)
        if tenant_id is not None:
            query = query.where(_US.tenant_id == tenant_id.lower())
        return [_user(r) for r in self.c.execute(query)]

    def user(self, object_id: str) -> UserRecord | None:
        row = self.c.execute(select(users).where(_US.id == object_id.lower())).first()
        return _user(row) if row else None

    def user_by_name(self, user_principal_name: str) -> UserRecord | None:
        row = self.c.execute(select(users).where(_US.user_principal_name == user_principal_name.lower())).first()
        return _user(row) if row else None

    def add_user(self, record: UserRecord) -> None:
        """Raises UserNameTaken when another transaction added the same name first (two creates
        racing past the caller's check: the unique index decides)."""
        try:
            with self.c.begin_nested():
                self.c.execute(insert(users).values(**record.__dict__))
        except IntegrityError as error:
            raise UserNameTaken(record.user_principal_name) from error

    def delete_user(self, object_id: str) -> None:
        sessions = [r.id for r in self.c.execute(select(_SS.id).where(_SS.user_id == object_id))]
        if sessions:
            self.c.execute(delete(refresh_tokens).where(_RT.session_id.in_(sessions)))
            self.c.execute(delete(authorization_codes).where(_AC.session_id.in_(sessions)))
        self.c.execute(delete(sign_in_sessions).where(_SS.user_id == object_id))
        self.c.execute(delete(users).where(_US.id == object_id))

    # -- wrong passwords -------------------------------------------------------------------
    def sign_in_failures(self, user_name: str) -> tuple[int, float]:
        """(wrong passwords in a row, locked until) for a sign-in name."""
        row = self.c.execute(select(_SF.failed, _SF.locked_until).where(_SF.user_name == user_name)).first()
        return (row.failed, row.locked_until) if row else (0, 0.0)

    def set_sign_in_failures(self, user_name: str, failed: int, locked_until: float, now: float,
                             forget_before: float) -> None:
        self.c.execute(delete(sign_in_failures).where(or_(_SF.user_name == user_name,
                                                          _SF.updated_at < forget_before)))
        self.c.execute(insert(sign_in_failures).values(user_name=user_name, failed=failed,
                                                       locked_until=locked_until, updated_at=now))

    def clear_sign_in_failures(self, user_name: str) -> None:
        self.c.execute(delete(sign_in_failures).where(_SF.user_name == user_name))

    # -- sessions --------------------------------------------------------------------------
    def add_session(self, record: SessionRecord, cookie_hash: str) -> None:
        self.c.execute(insert(sign_in_sessions).values(cookie_hash=cookie_hash, **record.__dict__))

    def session(self, session_id: str) -> SessionRecord | None:
        row = self.c.execute(select(sign_in_sessions).where(_SS.id == session_id)).first()
        return _session(row) if row else None

    def session_by_cookie(self, cookie_hash: str) -> SessionRecord | None:
        row = self.c.execute(select(sign_in_sessions).where(_SS.cookie_hash == cookie_hash)).first()
        return _session(row) if row else None

    def end_session(self, session_id: str, now: float) -> None:
        self.c.execute(update(sign_in_sessions).where(_SS.id == session_id, _SS.ended_at.is_(None))
                       .values(ended_at=now))
        self.c.execute(delete(refresh_tokens).where(_RT.session_id == session_id))

    def drop_sign_in_state_before(self, moment: float) -> None:
        """Expired codes, refresh tokens and sessions: nothing can use them any more."""
        self.c.execute(delete(authorization_codes).where(_AC.expires_at < moment))
        self.c.execute(delete(refresh_tokens).where(_RT.expires_at < moment))
        self.c.execute(delete(sign_in_sessions).where(_SS.expires_at < moment))

    # -- authorization codes ---------------------------------------------------------------
    def add_code(self, record: CodeRecord) -> None:
        self.c.execute(insert(authorization_codes).values(**record.__dict__))

    def code(self, code_hash: str) -> CodeRecord | None:
        row = self.c.execute(select(authorization_codes).where(_AC.code_hash == code_hash)).first()
        return CodeRecord(**row._mapping) if row else None

    def redeem_code(self, code_hash: str, now: float) -> bool:
        """Marks the code used; False when another redemption got there first."""
        done = self.c.execute(update(authorization_codes)
                              .where(_AC.code_hash == code_hash, _AC.redeemed_at.is_(None))
                              .values(redeemed_at=now))
        return done.rowcount == 1

    # -- refresh tokens --------------------------------------------------------------------
    def add_refresh_token(self, record: RefreshRecord) -> None:
        self.c.execute(insert(refresh_tokens).values(**record.__dict__))

    def take_refresh_token(self, token_hash: str) -> RefreshRecord | None:
        """The refresh token, removed (each is used once; its redemption issues the next)."""
        row = self.c.execute(select(refresh_tokens).where(_RT.token_hash == token_hash)).first()
        if row is None:
            return None
        done = self.c.execute(delete(refresh_tokens).where(_RT.token_hash == token_hash))
        return RefreshRecord(**row._mapping) if done.rowcount == 1 else None


class UserStore(AccessStore):
    transaction = UserTransaction
