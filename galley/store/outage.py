"""Whether an error means the database is (for now) out of reach, rather than a fault of Galley's.

PostgreSQL stopped or restarting (connection refused, an admin shutdown ending the session, a
connection reset mid-transaction, "the database system is starting up"), a transaction that lost
a serialization race, a pool with no connection free in time, or an SQLite file that stays locked
past the busy timeout or cannot be opened: all pass by themselves, so callers answer 503 with
Retry-After (the API) or leave the work to be taken up again (the workers), never a 500 or a
failed operation. An SQLite OperationalError of any other kind ("no such table") is a bug, and
stays one.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc

try:
    import psycopg
except ImportError:  # PostgreSQL support is optional
    psycopg = None

RETRY_AFTER_SECONDS = 5
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy",
                     "unable to open database file", "disk i/o error")


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from or while handling, says so."""
    return any(_says_unavailable(link) for link in causes(error))


def _says_unavailable(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True  # SQLAlchemy recognised a disconnect; the pool has dropped the connection
    if isinstance(error, exc.TimeoutError):
        return True  # no pooled connection came free in time
    if isinstance(error, exc.DBAPIError) and error.orig is not None and error.orig is not error:
        return _says_unavailable(error.orig)
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        return True  # connection failures, admin shutdown, start-up, serialization, cancelled
    if isinstance(error, sqlite3.OperationalError):
        return any(words in str(error).lower() for words in _SQLITE_TRANSIENT)
    return False


def causes(error: BaseException, limit: int = 16):
    """`error`, the error it was raised from (or while handling), and so on."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen and len(seen) < limit:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def first_line(error: BaseException) -> str:
    """The error in one short line, for a warning that needs no traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
