from __future__ import annotations

from pathlib import Path

import pytest

from taxgate.store import open_store
from taxgate.synth import Mix, generate_batch, generate_master

from support import SERVER, Service, server_database

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


@pytest.fixture()
def service(store, world, tmp_path) -> Service:
    return Service(store, world, tmp_path)


# -- the ledger ----------------------------------------------------------------------------------
