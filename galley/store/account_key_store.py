"""Storage account keys over SQLAlchemy Core (table storage_account_keys).

An account's keys are made the first time they are needed (its creation, listKeys, or the first
signed request), so accounts made before keys existed get theirs too. Rows of an earlier account
with the same id (deleted, then made again) are replaced, never reused: they carry its creationTime.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from ..domain.account_keys import KEY_NAMES, AccountKey, new_value
from ..domain.resource import Resource, iso, utc_now
from .sql_store import SqlStore
from .tables import storage_account_keys

_K = storage_account_keys.c


class AccountKeyStore:
    def __init__(self, engine: Engine) -> None:
        self._sql = SqlStore(engine)

    def keys(self, account: Resource) -> list[AccountKey]:
        created = account.properties.get("creationTime", "")
        with self._sql.read() as tx:
            found = self._current(tx.c, account.key, created)
        if len(found) == len(KEY_NAMES):
            return found
        with self._sql.write() as tx:
            tx.lock(f"account-keys:{account.key}")
            found = self._current(tx.c, account.key, created)
            if len(found) < len(KEY_NAMES):
                tx.c.execute(delete(storage_account_keys).where(_K.account_key == account.key))
                now = iso(utc_now())
                found = [AccountKey(name, new_value(), now) for name in KEY_NAMES]
                tx.c.execute(insert(storage_account_keys), [
                    {"account_key": account.key, "key_name": k.name, "account_created": created,
                     "value": k.value, "created_at": k.created_at} for k in found])
        return found

    def regenerate(self, account: Resource, key_name: str) -> list[AccountKey]:
        self.keys(account)
        with self._sql.write() as tx:
            tx.c.execute(update(storage_account_keys)
                         .where(_K.account_key == account.key, _K.key_name == key_name)
                         .values(value=new_value(), created_at=iso(utc_now())))
        return self.keys(account)

    @staticmethod
    def _current(connection, account_key: str, created: str) -> list[AccountKey]:
        rows = connection.execute(select(storage_account_keys).where(
            _K.account_key == account_key, _K.account_created == created)).all()
        return [AccountKey(r.key_name, r.value, r.created_at) for r in rows]
