"""A value the database refused as data (sqlalchemy's DataError): PostgreSQL refuses text holding
NUL ("text fields cannot contain NUL") and numbers out of a column's range, where SQLite would
have taken them. The statement failed and its transaction is rolled back, so nothing changed;
the value came from the request, so the API answers 400 rather than 500."""

from __future__ import annotations

from sqlalchemy.exc import DataError

from .outage import causes, first_line


def refused_value(error: BaseException) -> str | None:
    """The database's reason when `error` is (or was raised from) a refused value, else None."""
    for link in causes(error):
        if isinstance(link, DataError):
            return first_line(link.orig if link.orig is not None else link)
    return None


def message(reason: str) -> str:
    return (f"A value in the request cannot be stored: {reason}. Names, ids, keys and parameters may not "
            "hold NUL characters, and numbers must fit in 64 bits.")
