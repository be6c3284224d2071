"""The operational store: SQLAlchemy 2 over SQLite (default, a file in the working folder) or
PostgreSQL (by URL), schema by Alembic migrations run on open.

    TAXGATE_DATABASE_URL=postgresql+psycopg://user@127.0.0.1/taxgate   (or --database-url)
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import SingletonThreadPool

from taxgate.store import models

DEFAULT_URL = "sqlite:///taxgate.db"
MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["DEFAULT_URL", "Store", "StoreError", "database_url", "models", "open_store"]


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message is the one line the user sees."""


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("TAXGATE_DATABASE_URL") or DEFAULT_URL


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.session = sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def threads_share_it(self) -> bool:
        """Whether a thread of this process sees what another committed: not so for SQLite in
        memory, a database per connection and so, in SQLAlchemy's pool for it, per thread."""
        return not isinstance(self.engine.pool, SingletonThreadPool)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL for readers alongside the writer; BEGIN IMMEDIATE so that a writer takes the lock at the
    start of its transaction, not half-way through (which would fail instead of wait)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # transactions are begun below, not by the driver
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # A reader that asks for it (a full verify) takes no write lock: WAL gives it a snapshot.
        read_only = connection.get_execution_options().get("taxgate_read_only")
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open (and migrate) the store at `url`, TAXGATE_DATABASE_URL, or the default SQLite file."""
    url = database_url(url)
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use database URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    try:
        if upgrade:
            migrate(engine)
        else:
            with engine.connect():
                pass
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the store at {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).splitlines()[0]}"
        ) from None
    return Store(engine)
