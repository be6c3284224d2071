"""The store: the migrations build exactly the models' schema, on the database CI asked for."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from taxgate.store import StoreError, open_store
from taxgate.store.models import Base

from support import SERVER


def test_a_store_opened_without_a_url_is_the_one_taxgate_database_url_names(database_url, tmp_path):
    """What the CLI does (`open_store()`): the store is the database TAXGATE_DATABASE_URL names,
    on the server CI asked for, never ./taxgate.db."""
    opened = open_store()
    try:
        with opened.engine.connect() as connection:
            if SERVER:
                assert opened.dialect == "postgresql"
                assert "PostgreSQL" in connection.exec_driver_sql("SELECT version()").scalar_one()
                name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
                assert name == database_url.rsplit("/", 1)[1]
            else:
                assert opened.dialect == "sqlite"
                files = connection.exec_driver_sql("PRAGMA database_list").fetchall()
                assert files[0][2] == str(tmp_path / "taxgate.db")
    finally:
        opened.close()


def test_migrations_match_the_models(store):
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_opening_twice_migrates_once(database_url):
    open_store(database_url).close()
    again = open_store(database_url)
    with again.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0009"
    again.close()


def test_an_unusable_url_is_a_store_error():
    with pytest.raises(StoreError, match="database URL"):
        open_store("nosuchdb://x")


# -- bulk inserts (store.bulk): the driver's own path, the ORM's values ------------------------------


def _notices(first_index: int) -> list[dict]:
    from datetime import UTC, datetime

    due = datetime(2025, 7, 25, 13, 5, 7, 123456, tzinfo=UTC)
    return [
        {
            "kind": "taxpayer",
            "batch_id": None,
            "order_id": None,
            "incident_id": None,
            "tin": f"00000000{i}",
            "recipient": f"taxpayer {i}",
            "due_at": due,
            "sent_at": None,
            "body": 'a \t tab, a \\ backslash, a \n newline, a "quote", \\N, \u00e9',
            "ledger_index": first_index + i,
            "sent_index": None,
        }
        for i in range(3)
    ]


def test_a_bulk_insert_stores_what_the_orm_stores(store):
    """Timestamps, text with tabs, backslashes and "\\N" (COPY's escapes), bytes and NULLs come back
    from a bulk insert exactly as from an ORM insert of the same values, down to the stored text."""
    from sqlalchemy import select

    from taxgate.store.bulk import insert_rows
    from taxgate.store.models import LedgerEntry, NoticeRecord

    orm, bulk = _notices(900_000), _notices(900_010)
    entries = [
        {
            "idx": 800_000 + i,
            "entry": bytes([0, 92, 9, 10, 255]) * (i + 1),
            "leaf_hash": bytes(range(32)),
        }
        for i in range(4)
    ]
    with store.session.begin() as session:
        session.add_all(NoticeRecord(**r) for r in orm)
        session.add_all(LedgerEntry(**e) for e in entries[:2])
        session.flush()
        insert_rows(session.connection(), NoticeRecord.__table__, bulk)
        insert_rows(session.connection(), LedgerEntry.__table__, entries[2:])
    columns = ("kind", "batch_id", "tin", "recipient", "due_at", "sent_at", "body", "sent_index")
    with store.session() as session:
        got = {n.ledger_index: n for n in session.scalars(select(NoticeRecord))}
        for a, b in zip(orm, bulk):
            x, y = got[a["ledger_index"]], got[b["ledger_index"]]
            assert (
                [getattr(y, c) for c in columns]
                == [getattr(x, c) for c in columns]
                == [a[c] for c in columns]
            )
        stored = {e.idx: (e.entry, e.leaf_hash) for e in session.scalars(select(LedgerEntry))}
        assert [stored[e["idx"]] for e in entries] == [
            (e["entry"], e["leaf_hash"]) for e in entries
        ]
    with (
        store.engine.connect() as connection
    ):  # the stored text itself, not only what the ORM reads back
        raw = dict(
            connection.exec_driver_sql(
                "SELECT ledger_index, CAST(due_at AS VARCHAR(64)) FROM notices"
            ).all()
        )
        assert raw[orm[0]["ledger_index"]] == raw[bulk[0]["ledger_index"]]


def test_a_bulk_insert_that_breaks_a_constraint_is_sqlalchemys_error_and_leaves_nothing(store):
    """The command line turns a SQLAlchemy error into one line; a driver's own error would be a traceback."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError

    from taxgate.store.bulk import insert_rows
    from taxgate.store.models import NoticeRecord

    rows = _notices(900_000)
    with pytest.raises(IntegrityError):
        with store.session.begin() as session:
            insert_rows(
                session.connection(), NoticeRecord.__table__, rows + [rows[0]]
            )  # ledger_index is unique
    with store.session() as session:
        assert session.scalar(select(func.count(NoticeRecord.id))) == 0
