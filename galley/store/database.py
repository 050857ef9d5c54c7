"""Engines for the embedded default (SQLite file) and PostgreSQL, with migrations applied at start."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # As many pooled connections as the server has request threads: opening one costs PRAGMAs.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=40, max_overflow=16)
        _sqlite_transactions(engine)
        return engine
    return create_engine(url, pool_size=8, max_overflow=16, pool_pre_ping=True)


def _sqlite_transactions(engine: Engine) -> None:
    """pysqlite's own transaction handling defers locks; take them explicitly instead.

    Writers begin with BEGIN IMMEDIATE so that a read-then-write (check a name, then insert)
    cannot interleave with another writer; readers get a consistent snapshot under WAL.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.info.get("write")
        if mode is None:
            return  # a single-statement read: SQLite's autocommit gives it a consistent view
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode else "BEGIN")


def migrate(engine: Engine) -> None:
    # Each step's INFO line is noise before `galley serve`'s one ready line; failures still show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        connection.info["write"] = True
        with connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
