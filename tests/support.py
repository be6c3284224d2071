"""What the tests share that is not a fixture: a store on the test server, the service with a user
per role, the command line in a subprocess, a live server, the console signed in, and the orders,
notes and scored-pair features more than one area's tests use. Fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from taxgate.identify.features import FEATURE_COLUMNS, address_features, person_features
from taxgate.store import open_store
from taxgate.store.models import AccessRefusal

TESTS = Path(__file__).resolve().parent
CONFORMANCE = TESTS / "conformance"  # the design's cases, as data (docs/DESIGN.md "Conformance")

# -- the store --------------------------------------------------------------------------------

# CI sets this to a PostgreSQL server (postgresql+psycopg://user@127.0.0.1/postgres); every test then
# gets a fresh database on it. Unset, every test gets a fresh SQLite file.
SERVER = os.environ.get("TAXGATE_TEST_DATABASE_URL")


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


# -- the service ------------------------------------------------------------------------------

ROLES = ("requester", "officer", "court", "auditor", "admin")


def upload_files(
    manifest: Path,
    rows_name: str | None = None,
    rows: bytes | None = None,
    manifest_bytes: bytes | None = None,
) -> dict:
    """The multipart parts of an upload of `manifest` and the rows file it names."""
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


def console(service, role: str) -> tuple[TestClient, str]:
    """A signed-in console client for `role` and its CSRF token."""
    client = TestClient(service.app)
    form = client.get("/login").text
    token = re.search(r'name="login_token" value="([^"]+)"', form).group(1)
    answer = client.post(
        "/login",
        data={"username": role, "password": service.passwords[role], "login_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/").text
    return client, re.search(r'"X-CSRF-Token": "([^"]+)"', page).group(1)


def refusals(store) -> int:
    """Every refusal counted (a repeat within a minute is counted on its first row)."""
    with store.session() as session:
        return session.execute(
            select(func.coalesce(func.sum(AccessRefusal.repeats), 0))
        ).scalar_one()


REVIEW_NOTE = "Same person: the street is misspelled."


def queued_reviews(service, batch) -> list[dict]:
    assert service.submit(batch).status_code == 202
    service.run_queued()
    return service.client.get("/api/reviews", headers=service.auth("officer")).json()["reviews"]


# -- the ledger -------------------------------------------------------------------------------


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


# -- the command line and a live server -------------------------------------------------------


def taxgate(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "taxgate", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def assert_user_error(run, fragment):
    assert run.returncode == 2, run
    assert "Traceback" not in run.stderr + run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], run.stderr


PASSWORD = "served-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, master: Path, folder: Path, database_url: str, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "taxgate",
            "serve",
            "--port",
            str(self.port),
            "--master",
            str(master),
            "--data-dir",
            str(folder / "data"),
            "--database-url",
            database_url,
            "--release-every",
            "0",
            "--lease-seconds",
            "3",
        ]
        self.env = {**os.environ, **env}
        self.log = folder / "server.log"
        self.process = None

    def start(self) -> Server:
        self.process = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/login", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not start:\n" + self.log.read_text())

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no clean shutdown at all."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def rows_of(manifest: Path) -> Path:
    return manifest.parent / json.loads(manifest.read_text())["requests"]


def wait_done(server: Server, headers: dict, batch_id: int, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        view = httpx.get(f"{server.url}/api/batches/{batch_id}", headers=headers).json()
        if view["status"] in ("done", "failed"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} not done in {seconds} s")


# -- orders -----------------------------------------------------------------------------------

STAY = {
    "kind": "stay",
    "court": "D.D.C.",
    "docket": "1:25-cv-00457",
    "issued": "2025-11-21",
    "effective_from": "2025-11-21",
    "effective_to": None,
    "hours": None,
    "scope": {"agency": "DHS-ICE", "statutes": []},
    "notify": ["court", "plaintiffs"],
}

LIFT = {"authority": "Order of 2026-03-01, ECF 42", "reason": "The court lifted the stay."}


def response_rows(out) -> list[dict]:
    """The response a batch wrote to `out`, one dict per row, in row order."""
    with open(out / "response.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- identification ---------------------------------------------------------------------------


def request_features(
    first="Maria",
    last="Garcia",
    dob="1985-03-12",
    street="12 Oak St",
    unit="",
    city="Atlanta",
    state="GA",
    zip_code="30301",
    middle="",
    suffix="",
    tin="",
) -> dict:
    """One side of a scored pair as the identify stage's features would give it (None: empty)."""
    values = (
        *person_features(first, middle, last, suffix, dob, tin),
        *address_features(street, unit, city, state, zip_code),
    )
    return {c: (v or None) for c, v in zip(FEATURE_COLUMNS, values, strict=True)}
