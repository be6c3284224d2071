"""The ledger as served under /log (C2SP tlog-tiles), checked with an independently written client:
the Go checksum database's tlog and note packages (Debian's golang-golang-x-mod-dev), driven by
`c2sp_client/main.go`, which only fetches. It verifies the checkpoint's signature, every tile
against the root, inclusion of entries read from the entry bundles, and consistency with an older
checkpoint; a tile altered in the store makes it fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from taxgate.ledger import Ledger, sign_checkpoint
from taxgate.pipeline import process
from taxgate.service.tlog import encode_index, tile_index

from support import Service, Threaded, verifier_key

pytestmark = pytest.mark.slow  # a served log checked by the Go client

CLIENT = Path(__file__).parent / "c2sp_client" / "main.go"
GOPATH = Path("/usr/share/gocode")  # Debian's Go sources: golang.org/x/mod among them


@pytest.fixture(scope="session")
def c2sp_client(tmp_path_factory) -> Path:
    go = shutil.which("go")
    assert go and (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir(), (
        "the C2SP client test needs Debian's golang-go and golang-golang-x-mod-dev (scripts/test installs them)"
    )
    folder = tmp_path_factory.mktemp("c2sp")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(folder / "cache"),
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    subprocess.run(
        [go, "build", "-o", str(folder / "c2sp-client"), str(CLIENT)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder / "c2sp-client"


def run_client(client: Path, url: str, token: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(client), url + "/log", verifier_key(), token, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_served_log_verifies_with_an_independent_c2sp_client(
    c2sp_client, store, world, small_batch, tmp_path
):
    service = Service(store, world, tmp_path)
    process(small_batch, world["master"], tmp_path / "first", store=store)
    with store.session() as session:
        older = Ledger(store).latest_checkpoint(session)
    (tmp_path / "older.txt").write_text(older)
    process(world["manifest"], world["master"], tmp_path / "second", store=store)
    with store.session() as session:
        size = Ledger(store).size(session)
    assert size > 1_000  # several tiles, a partial one at the right edge
    with Threaded(service.app) as served:
        indexes = [0, 255, 256, size // 2, size - 1]
        run = run_client(
            c2sp_client, served.url, service.tokens["auditor"], tmp_path / "older.txt", *indexes
        )
        assert run.returncode == 0, run.stdout + run.stderr
        older_size = int(older.split("\n")[1])
        assert f"ok consistent {older_size} -> {size}" in run.stdout
        assert all(f"ok entry {i} included" in run.stdout for i in indexes)

        # Without an auditor's token the entries are not served; the hashes still are.
        run = run_client(c2sp_client, served.url, service.tokens["requester"], 3)
        assert run.returncode == 1 and "403" in run.stdout, run.stdout
        run = run_client(c2sp_client, served.url, "no-token", tmp_path / "older.txt")
        assert run.returncode == 0 and "ok consistent" in run.stdout, run.stdout

        # One hash altered in a stored tile (entry 0's, on entry 1's proof): the client rejects the log.
        with store.engine.begin() as connection:
            tile = connection.execute(
                text("SELECT hashes FROM ledger_tiles WHERE level = 0 AND n = 0")
            ).scalar_one()
            connection.execute(
                text("UPDATE ledger_tiles SET hashes = :h WHERE level = 0 AND n = 0"),
                {"h": bytes([tile[0] ^ 1]) + bytes(tile[1:])},
            )
        run = run_client(c2sp_client, served.url, service.tokens["auditor"], 1)
        assert run.returncode == 1 and "FAIL inclusion of 1" in run.stdout, run.stdout


def test_tile_paths_are_c2sp_s_and_nothing_else(store, world, tmp_path):
    assert (
        encode_index(1234067) == "x001/x234/067"
        and encode_index(5) == "005"
        and encode_index(1000) == "x001/000"
    )
    assert tile_index("x001/x234/067") == (1234067, None) and tile_index("067.p/8") == (67, 8)
    service = Service(store, world, tmp_path)  # its users' account entries come first
    with store.session.begin() as session:
        ledger = Ledger(store)
        ledger.append(
            session, [{"kind": "test", "n": i} for i in range(300 - ledger.size(session))]
        )
    sign_checkpoint(store)
    client = TestClient(service.app)
    assert len(client.get("/log/tile/0/000").content) == 8192
    assert len(client.get("/log/tile/0/001.p/44").content) == 44 * 32
    assert client.get("/log/tile/0/001").status_code == 404  # not full yet
    assert client.get("/log/tile/1/000.p/1").status_code == 200
    for bad in (
        "/log/tile/0/0",
        "/log/tile/0/x000/000",
        "/log/tile/0/000.p/0",
        "/log/tile/0/000.p/256",
        "/log/tile/0/000.p/08",
        "/log/tile/64/000",
        "/log/tile/0/../000",
        "/log/tile/0/001.p/45",
    ):
        assert client.get(bad).status_code == 404, bad
    bundle = client.get("/log/tile/entries/001.p/44", headers=service.auth("auditor"))
    assert bundle.status_code == 200 and bundle.content[:2] == len(
        bundle.content[2 : 2 + int.from_bytes(bundle.content[:2], "big")]
    ).to_bytes(2, "big")
    assert client.get("/log/tile/entries/001.p/44").status_code == 401
    checkpoint = client.get("/log/checkpoint")
    assert (
        checkpoint.headers["content-type"].startswith("text/plain")
        and checkpoint.text.split("\n")[1] == "300"
    )
