from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from taxgate.store import open_store
from taxgate.synth import generate_batch, generate_master

# CI sets this to a PostgreSQL server (postgresql+psycopg://user@127.0.0.1/postgres); every test then
# gets a fresh database on it. Unset, every test gets a fresh SQLite file.
SERVER = os.environ.get("TAXGATE_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def database_url(tmp_path, monkeypatch) -> str:
    """Each test's own empty store and signing key, so no test sees another's ledger."""
    monkeypatch.setenv("TAXGATE_LEDGER_KEY", str(tmp_path / "ledger.key"))
    if not SERVER:
        url = f"sqlite:///{tmp_path / 'taxgate.db'}"
        monkeypatch.setenv("TAXGATE_DATABASE_URL", url)
        yield url
        return
    name = f"tg_{uuid.uuid4().hex[:16]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("TAXGATE_DATABASE_URL", url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def store(database_url):
    opened = open_store(database_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic world shared by the end-to-end tests: master, labels, one default batch."""
    root = tmp_path_factory.mktemp("world")
    master = root / "master.parquet"
    generate_master(3_000, master, seed=3)
    manifest = generate_batch(master, root / "batch", 1_500, seed=5)
    return {"root": root, "master": master, "manifest": manifest}
