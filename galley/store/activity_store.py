"""The activity log's records over SQLAlchemy Core: appended in batches, read a page at a time
(newest first), deleted only when older than the retention period."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

from sqlalchemy import Connection, Engine, and_, delete, false, func, insert, or_, select

from ..activity.entry import Entry, EventQuery
from .sql_store import SqlStore
from .tables import activity_log, subscriptions

_AL = activity_log.c
_FIELDS = [f for f in Entry.__dataclass_fields__]


def _entry(row) -> Entry:
    m = row._mapping
    return Entry(**{name: m[name] for name in _FIELDS})


class ActivityTransaction:
    def __init__(self, connection: Connection) -> None:
        self.c = connection

    def known_subscriptions(self, subscription_ids: set[str]) -> set[str]:
        if not subscription_ids:
            return set()
        return set(self.c.execute(select(subscriptions.c.id).where(subscriptions.c.id.in_(subscription_ids)))
                   .scalars())

    def append(self, entries: list[Entry]) -> None:
        """Entries under a subscription that does not exist are kept as not under any."""
        known = self.known_subscriptions({e.subscription_id for e in entries if e.subscription_id})
        rows = [{name: getattr(e, name) for name in _FIELDS} for e in
                (e if e.subscription_id in known or e.subscription_id is None else replace(e, subscription_id=None)
                 for e in entries)]
        self.c.execute(insert(activity_log), rows)

    def page(self, query: EventQuery, limit: int, after: tuple[str, str] | None = None) -> list[Entry]:
        """Up to `limit` entries matching `query`, newest first, after the (timestamp, id) given."""
        where = [_AL.subscription_id == query.subscription_id.lower(),
                 _AL.event_timestamp >= query.start, _AL.event_timestamp <= query.end]
        if query.resource_group is not None:
            where.append(func.lower(_AL.resource_group) == query.resource_group.lower())
        if query.resource_id is not None:
            where.append(func.lower(_AL.resource_id) == query.resource_id.lower().rstrip("/"))
        if query.correlation_id is not None:
            where.append(_AL.correlation_id == query.correlation_id)
        if query.caller is not None:
            where.append(func.lower(_AL.caller) == query.caller.lower())
        if query.resource_provider is not None:
            where.append(func.lower(_AL.action).like(query.resource_provider.lower() + "/%"))
        if query.status is not None:
            outcomes = {"failed": _AL.status_code >= 400, "accepted": _AL.status_code == 202,
                        "succeeded": and_(_AL.status_code < 400, _AL.status_code != 202)}
            where.append(outcomes.get(query.status.lower(), false()))  # e.g. 'Started': none here
        if after is not None:
            where.append(or_(_AL.event_timestamp < after[0],
                             and_(_AL.event_timestamp == after[0], _AL.id < after[1])))
        statement = (select(activity_log).where(*where)
                     .order_by(_AL.event_timestamp.desc(), _AL.id.desc()).limit(limit))
        return [_entry(r) for r in self.c.execute(statement)]

    def delete_before(self, moment: str) -> int:
        return self.c.execute(delete(activity_log).where(_AL.event_timestamp < moment)).rowcount or 0


class ActivityStore:
    """Shares the resource store's engine (and so its SQLite transaction rules)."""

    def __init__(self, engine: Engine) -> None:
        self._sql = SqlStore(engine)

    @contextmanager
    def read(self) -> Iterator[ActivityTransaction]:
        with self._sql.read() as tx:
            yield ActivityTransaction(tx.c)

    @contextmanager
    def write(self) -> Iterator[ActivityTransaction]:
        with self._sql.write() as tx:
            yield ActivityTransaction(tx.c)
