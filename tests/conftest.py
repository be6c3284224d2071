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


# -- the service ---------------------------------------------------------------------------------

ROLES = ("requester", "officer", "court", "auditor", "admin")


@pytest.fixture(scope="session")
def small_batch(world, tmp_path_factory) -> Path:
    """A 300-request batch from the shared world, for the service's tests."""
    return generate_batch(world["master"], tmp_path_factory.mktemp("small") / "batch", 300, seed=11)


def upload_files(manifest: Path, rows_name: str | None = None, rows: bytes | None = None, manifest_bytes: bytes | None = None) -> dict:
    """The multipart parts of an upload of `manifest` and the rows file it names."""
    import json

    raw = manifest_bytes if manifest_bytes is not None else manifest.read_bytes()
    rows_path = manifest.parent / json.loads(manifest.read_text())["requests"]
    return {"manifest": ("manifest.json", raw, "application/json"),
            "rows": (rows_name or rows_path.name, rows if rows is not None else rows_path.read_bytes(), "text/csv")}


class Service:
    """A service app on the test's store with one user per role (plus a requester of another
    agency), each with an API token; `client` is a TestClient."""

    def __init__(self, store, world, tmp_path, **settings):
        from fastapi.testclient import TestClient

        from taxgate import accounts
        from taxgate.service import Settings, create_app

        self.store = store
        self.settings = Settings(master=world["master"], data_dir=tmp_path / "data", workers=0, release_every=0,
                                 **settings)
        self.app = create_app(self.settings, store)
        self.client = TestClient(self.app)
        self.tokens, self.passwords = {}, {}
        for role in ROLES:
            password = f"{role}-password-for-tests"
            accounts.add_user(store, role, role, "DHS-ICE" if role == "requester" else "", password)
            self.tokens[role], self.passwords[role] = accounts.issue_token(store, role), password
        accounts.add_user(store, "other", "requester", "OTHER-AGENCY", "other-password-for-tests")
        self.tokens["other"] = accounts.issue_token(store, "other")

    def auth(self, role: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def submit(self, manifest: Path, role: str = "requester", **parts):
        return self.client.post("/api/batches", headers=self.auth(role), files=upload_files(manifest, **parts))

    def run_queued(self) -> int:
        from taxgate.service import jobs

        return jobs.run_queued(self.store, self.settings)


@pytest.fixture()
def service(store, world, tmp_path) -> Service:
    return Service(store, world, tmp_path)
