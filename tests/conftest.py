from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from taxgate.store import open_store
from taxgate.synth import Mix, generate_batch, generate_master

# CI sets this to a PostgreSQL server (postgresql+psycopg://user@127.0.0.1/postgres); every test then
# gets a fresh database on it. Unset, every test gets a fresh SQLite file.
SERVER = os.environ.get("TAXGATE_TEST_DATABASE_URL")


USER_FILES = ("taxgate.db", "taxgate.db-journal", "taxgate.db-wal", "taxgate-ledger.key")


def _user_files() -> dict[str, bytes | None]:
    """The bytes of the user's own store and key in the working folder (None: absent)."""
    return {name: Path(name).read_bytes() if Path(name).is_file() else None for name in USER_FILES}


@pytest.fixture(scope="session", autouse=True)
def no_user_files(tmp_path_factory):
    """Fixtures wider than one test get a store and key of their own too, never ./taxgate.db or
    ./taxgate-ledger.key in the working folder (each test then gets its own, below). The user's
    files, if any (after `scripts/demo` there are), must end the run byte for byte as they began."""
    before = _user_files()
    root = tmp_path_factory.mktemp("session-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAXGATE_LEDGER_KEY", str(root / "ledger.key"))
        patch.setenv("TAXGATE_DATABASE_URL", f"sqlite:///{root / 'taxgate.db'}")
        yield
    changed = [name for name, content in _user_files().items() if content != before[name]]
    assert not changed, f"a test wrote the user's own files in the working folder: {changed}"


@pytest.fixture(autouse=True)
def database_url(tmp_path, monkeypatch) -> str:
    """Each test's own empty store and signing key, so no test sees another's ledger."""
    monkeypatch.setenv("TAXGATE_LEDGER_KEY", str(tmp_path / "ledger.key"))
    if not SERVER:
        url = f"sqlite:///{tmp_path / 'taxgate.db'}"
        monkeypatch.setenv("TAXGATE_DATABASE_URL", url)
        yield url
        return
    with server_database() as url:
        monkeypatch.setenv("TAXGATE_DATABASE_URL", url)
        yield url


@contextlib.contextmanager
def server_database(template: str | None = None):
    """A fresh database on the test server (a copy of the database `template` names), dropped after."""
    name = f"tg_{uuid.uuid4().hex[:16]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{create_engine(template).url.database}"' if template else ""
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
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
    """A 300-request batch from the shared world, for the service's tests. Its dates of birth are
    mistyped more often than a clerk would, so that some misspelled names beside mistyped dates go
    to review: the review tests need a queue."""
    return generate_batch(
        world["master"],
        tmp_path_factory.mktemp("small") / "batch",
        300,
        seed=11,
        mix=Mix(dob_typo=0.6),
    )


def upload_files(
    manifest: Path,
    rows_name: str | None = None,
    rows: bytes | None = None,
    manifest_bytes: bytes | None = None,
) -> dict:
    """The multipart parts of an upload of `manifest` and the rows file it names."""
    import json

    raw = manifest_bytes if manifest_bytes is not None else manifest.read_bytes()
    rows_path = manifest.parent / json.loads(manifest.read_text())["requests"]
    return {
        "manifest": ("manifest.json", raw, "application/json"),
        "rows": (
            rows_name or rows_path.name,
            rows if rows is not None else rows_path.read_bytes(),
            "text/csv",
        ),
    }


class Service:
    """A service app on the test's store with one user per role (plus a requester of another
    agency), each with an API token; `client` is a TestClient."""

    def __init__(self, store, world, tmp_path, **settings):
        from fastapi.testclient import TestClient

        from taxgate import accounts
        from taxgate.service import Settings, create_app

        self.store = store
        self.settings = Settings(
            master=world["master"],
            data_dir=tmp_path / "data",
            workers=0,
            release_every=0,
            **settings,
        )
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
        return self.client.post(
            "/api/batches", headers=self.auth(role), files=upload_files(manifest, **parts)
        )

    def run_queued(self) -> int:
        from taxgate.service import jobs

        return jobs.run_queued(self.store, self.settings)


@pytest.fixture()
def service(store, world, tmp_path) -> Service:
    return Service(store, world, tmp_path)


# -- the ledger ----------------------------------------------------------------------------------


def verifier_key() -> str:
    """The verifier key of the test's own signing key (made on first use)."""
    from taxgate.ledger import load_signer

    return load_signer().verifier_key()


def findings(store, kept=()) -> list[str]:
    """What `taxgate ledger verify` would report about the test's store: the log and every row."""
    from taxgate.verification import verify_store

    return [f.message for f in verify_store(store, verifier_key(), kept)]


@contextlib.contextmanager
def signing_key(path: Path):
    """TAXGATE_LEDGER_KEY set to `path` for the block: a store other than the test's own has a key of
    its own (a key signs one log, and its record of the last checkpoint refuses any other)."""
    before = os.environ.get("TAXGATE_LEDGER_KEY")
    os.environ["TAXGATE_LEDGER_KEY"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["TAXGATE_LEDGER_KEY"]
        else:
            os.environ["TAXGATE_LEDGER_KEY"] = before


@contextlib.contextmanager
def control_store(folder: Path):
    """Another store, for a control run, with its own signing key."""
    with signing_key(folder / "control-ledger.key"):
        store = open_store(f"sqlite:///{folder / 'control.db'}")
        try:
            yield store
        finally:
            store.close()


class Threaded:
    """An ASGI app served by uvicorn on a free loopback port, in a thread, for the length of a test:
    for clients that need real HTTP (a witness, the Go C2SP client)."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Threaded:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
