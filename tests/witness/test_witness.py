"""Witnessing (C2SP tlog-witness, tlog-cosignature/v1): a witness that keeps its own state cosigns
each checkpoint that extends the last one it saw and refuses a fork; the log keeps the
cosignatures and serves them with its checkpoint."""

from __future__ import annotations

import base64
import hashlib

import pytest
from fastapi.testclient import TestClient

from taxgate.ledger import KeptCheckpoint, Ledger, load_signer, merkle, sign_checkpoint, verify_log
from taxgate.ledger.checkpoint import verify_note
from taxgate.store import open_store
from taxgate.witness import Cosigner, WitnessError, WitnessKey, note_body
from taxgate.witness.client import Witness, cosign_latest, cosigned_note
from taxgate.witness.server import create_witness_app

from support import Threaded, verifier_key

pytestmark = pytest.mark.slow  # live witness servers

ORIGIN = "taxgate.example/ledger"


@pytest.fixture()
def cosigner() -> Cosigner:
    return Cosigner.generate("court-monitor.example/w1")


@pytest.fixture()
def witness_app(cosigner, tmp_path):
    return create_witness_app(cosigner, {ORIGIN: verifier_key()}, tmp_path / "witness-state.json")


def grow(store, n: int, tag: str = "entry") -> str:
    ledger = Ledger(store)
    with store.session.begin() as session:
        start = ledger.size(session)
        ledger.append(session, [{"kind": "test", "n": start + i, "tag": tag} for i in range(n)])
    return sign_checkpoint(store)


def request_body(store, old: int, note: str) -> bytes:
    ledger = Ledger(store)
    with store.session() as session:
        size = ledger.size(session)
        proof = ledger.consistency(session, old, size) if 0 < old < size else []
    return (
        f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note
    ).encode()


def test_cosignature_v1_matches_the_specification_byte_for_byte(cosigner):
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    line = cosigner.cosign(body, 1679315147)
    blob = base64.b64decode(line.split(" ")[-1])
    assert line.startswith("\u2014 court-monitor.example/w1 ") and len(blob) == 4 + 8 + 64
    assert (
        blob[:4] == hashlib.sha256(b"court-monitor.example/w1\n\x04" + cosigner.public).digest()[:4]
    )
    assert int.from_bytes(blob[4:12], "big") == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    cosigner.private.public_key().verify(blob[12:], message)  # raises if the signed message differs
    key = WitnessKey.parse(cosigner.verifier_key())
    assert key.check(line, body) == 1679315147
    with pytest.raises(WitnessError, match="does not verify"):
        key.check(
            line, body.replace("20852163", "20852164")
        )  # another tree: this signature is not for it
    assert key.check(Cosigner.generate("someone-else").cosign(body, 5), body) is None


def test_the_witness_cosigns_each_checkpoint_that_extends_the_last(
    store, witness_app, cosigner, tmp_path
):
    witness = Witness(url="", key=WitnessKey.parse(cosigner.verifier_key()))
    with Threaded(witness_app) as served:
        witness = Witness(served.url, witness.key)
        first = grow(store, 300)
        assert cosign_latest(store, [witness]) == [
            f"witness {cosigner.name}: cosigned the checkpoint at size 300"
        ]
        second = grow(store, 700)
        assert cosign_latest(store, [witness]) == [
            f"witness {cosigner.name}: cosigned the checkpoint at size 1,000"
        ]
        assert cosign_latest(store, [witness]) == []  # cosigned already: nothing to ask
        with store.session() as session:
            served_note = cosigned_note(session, second)
        assert witness.key.check(served_note.splitlines(keepends=True)[-1], note_body(second))
        verify_note(served_note, verifier_key())  # the log's signature still verifies beside it
        monitored = TestClient(witness_app).get(
            f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"
        )
    assert monitored.status_code == 200 and verify_note(monitored.text, verifier_key()).size == 1000
    # What the witness holds is a checkpoint kept outside the store: the log must extend it.
    kept = KeptCheckpoint("the witness", verify_note(monitored.text, verifier_key()))
    with store.engine.connect() as connection:
        assert list(verify_log(connection, verifier_key(), [kept])) == [] and first


def test_the_witness_refuses_a_forked_log(store, witness_app, cosigner, tmp_path, database_url):
    with Threaded(witness_app) as served:
        witness = Witness(served.url, WitnessKey.parse(cosigner.verifier_key()))
        grow(store, 500)
        assert "cosigned" in cosign_latest(store, [witness])[0]
        # A second log with the same key and origin (the operator's fork): other entries, same key.
        fork = open_store(f"sqlite:///{tmp_path / 'fork.db'}")
        ledger = Ledger(fork)
        with fork.session.begin() as session:
            ledger.append(session, [{"kind": "test", "n": i, "tag": "forged"} for i in range(900)])
            note = ledger.store_checkpoint(session, load_signer(), 900, ledger.root(session, 900))
        answer = TestClient(witness_app).post(
            "/add-checkpoint", content=request_body(fork, 500, note)
        )
        assert answer.status_code == 422 and "does not extend" in answer.text
        same_size = TestClient(witness_app).post(
            "/add-checkpoint", content=request_body(fork, 500, _at(fork, 500))
        )
        assert same_size.status_code == 422 and "forked" in same_size.text
        # The honest log still gets its cosignature.
        grow(store, 100)
        assert "cosigned" in cosign_latest(store, [witness])[0]
        fork.close()


def _at(store, size: int) -> str:
    ledger = Ledger(store)
    with store.session.begin() as session:
        return ledger.store_checkpoint(session, load_signer(), size, ledger.root(session, size))


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (
            lambda note, store: request_body(
                store, 0, note.replace("taxgate.example/ledger\n", "elsewhere.example\n", 1)
            ),
            404,
            "does not watch",
        ),
        (
            lambda note, store: request_body(
                store, 0, note.replace(note.split("\n")[2], base64.b64encode(b"x" * 32).decode())
            ),
            403,
            "does not verify",
        ),
        (lambda note, store: request_body(store, 5000, note), 400, "beyond"),
        (lambda note, store: request_body(store, 7, note), 409, "0\n"),
        (
            lambda note, store: b"old 0\n" + base64.b64encode(b"y" * 32) + b"\n\n" + note.encode(),
            422,
            "no consistency proof",
        ),
        (lambda note, store: b"old 00\n\n" + note.encode(), 400, "old <size>"),
        (lambda note, store: b"old 0\nnot base64!\n\n" + note.encode(), 400, "not base64"),
        (lambda note, store: "old \u00b2\n\n".encode() + note.encode(), 400, "old <size>"),
        (lambda note, store: b"\xff\xfe", 400, "UTF-8"),
        (lambda note, store: b"old 0\n" + b"A" * 44 * 64 + b"\n\n", 400, ""),
    ],
    ids=[
        "unknown log",
        "bad signature",
        "old beyond size",
        "stale old size",
        "proof from empty",
        "leading zero",
        "bad base64",
        "superscript digit",
        "not utf-8",
        "too many or bad lines",
    ],
)
def test_the_witness_answers_the_protocol_s_status_codes(store, witness_app, body, status, says):
    note = grow(store, 40)
    answer = TestClient(witness_app).post("/add-checkpoint", content=body(note, store))
    assert answer.status_code == status and says in answer.text, answer.text
    if status == 409:
        assert answer.headers["content-type"].startswith("text/x.tlog.size")


def test_an_empty_tree_must_have_the_empty_root(witness_app):
    signer = load_signer()
    from taxgate.ledger.checkpoint import Checkpoint

    bad = signer.sign(Checkpoint(ORIGIN, 0, hashlib.sha256(b"not empty").digest()))
    assert (
        TestClient(witness_app)
        .post("/add-checkpoint", content=b"old 0\n\n" + bad.encode())
        .status_code
        == 422
    )
    good = signer.sign(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT))
    assert (
        TestClient(witness_app)
        .post("/add-checkpoint", content=b"old 0\n\n" + good.encode())
        .status_code
        == 200
    )


def test_the_console_shows_the_cosigned_checkpoint_whole(
    store, world, small_batch, tmp_path, cosigner, witness_app
):
    """The ledger page as a court monitor sees it: the checkpoint with the witness's cosignature,
    every signature line inside its box (none cut at the edge), and who cosigned it."""
    from playwright.sync_api import sync_playwright

    from taxgate.pipeline import process

    from seeing import CHROMIUM, CHROMIUM_ARGS
    from support import Service

    service = Service(store, world, tmp_path)
    process(small_batch, world["master"], tmp_path / "out", store=store)
    with Threaded(witness_app) as served:
        assert (
            "cosigned"
            in cosign_latest(
                store, [Witness(served.url, WitnessKey.parse(cosigner.verifier_key()))]
            )[0]
        )
    with Threaded(service.app) as served, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(served.url + "/login")
        page.fill("input[name=username]", "court")
        page.fill("input[name=password]", service.passwords["court"])
        page.click("button[type=submit]")
        page.goto(served.url + "/ledger")
        box = page.locator("pre#checkpoint")
        assert cosigner.name in box.inner_text() and "taxgate.example/ledger" in box.inner_text()
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), (
            "a signature line runs past its box"
        )
        assert page.locator("#witnesses").inner_text() == f"Cosigned by 1 witness: {cosigner.name}."
        browser.close()
