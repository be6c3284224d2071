"""The store: the migrations build exactly the models' schema, on the database CI asked for."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from conftest import SERVER
from taxgate.store import StoreError, open_store
from taxgate.store.models import Base

import pytest


def test_the_store_under_test_is_the_one_asked_for(store):
    assert store.dialect == ("postgresql" if SERVER else "sqlite")


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
