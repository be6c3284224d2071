"""The ledger and report commands on a processed batch: verify, checkpoint, prove and check offline,
consistency, a tampered decision found, accounting and the JCT figures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import text

from taxgate.pipeline import process
from taxgate.store import open_store

from dying import interrupted_env
from support import taxgate

pytestmark = pytest.mark.slow  # the command line in subprocesses


@pytest.fixture()
def processed(world, tmp_path, database_url):
    result = process(world["manifest"], world["master"], tmp_path / "out")
    with open(tmp_path / "out" / "response.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return result, rows


def test_verify_checkpoint_prove_and_check_offline(processed, tmp_path):
    result, rows = processed
    run = taxgate("ledger", "verify")
    assert run.returncode == 0 and "Ledger verified" in run.stdout, run.stderr
    note = taxgate("ledger", "checkpoint").stdout
    assert note == result.checkpoint  # nothing appended since the batch's own checkpoint
    disclosed = next(r for r in rows if r["outcome"] == "DISCLOSED")
    proof = taxgate("ledger", "prove", disclosed["ledger_index"])
    assert proof.returncode == 0, proof.stderr
    (tmp_path / "proof.json").write_text(proof.stdout)
    (tmp_path / "checkpoint.txt").write_text(note)
    key = (tmp_path / "ledger.pub").read_text().strip()
    check = taxgate(
        "ledger",
        "check",
        tmp_path / "proof.json",
        "--key",
        key,
        "--checkpoint",
        tmp_path / "checkpoint.txt",
    )
    assert check.returncode == 0 and "Proof checked" in check.stdout, check.stderr
    entry = json.loads(json.loads(proof.stdout)["entry"])
    assert (
        entry["kind"] == "decision"
        and entry["request_id"] == disclosed["request_id"]
        and entry["outcome"] == "DISCLOSED"
    )
    # Its broken twin: the entry altered.
    forged = json.loads(proof.stdout)
    forged["entry"] = forged["entry"].replace("DISCLOSED", "NOT_DISCLOSED")
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = taxgate("ledger", "check", tmp_path / "forged.json", "--key", key)
    assert refused.returncode == 1 and "REJECTED" in refused.stderr
    consistency = json.loads(taxgate("ledger", "consistency", 1).stdout)
    assert consistency["old"] == 1 and consistency["proof"]


def test_an_edited_decision_is_found_by_verify(processed, database_url):
    _, rows = processed
    refused = next(r for r in rows if r["outcome"] == "NOT_DISCLOSED")
    store = open_store(database_url)
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE decisions SET outcome = 'DISCLOSED' WHERE ledger_index = :i"),
            {"i": int(refused["ledger_index"])},
        )
    store.close()
    run = taxgate("ledger", "verify")
    assert run.returncode == 1
    assert (
        f"entry {refused['ledger_index']} (decision)" in run.stderr
        and refused["request_id"] in run.stderr
    )


def test_accounting_and_jct(processed, world, database_url):
    result, rows = processed
    from taxgate.reports import accounting, jct

    store = open_store(database_url)
    figures = jct(store, date.today().year)
    assert figures == [
        {
            "agency": "DHS-ICE",
            "requests": result.rows,
            "disclosures": result.outcomes["DISCLOSED"],
            "taxpayers_disclosed": figures[0]["taxpayers_disclosed"],
        }
    ]
    assert 0 < figures[0]["taxpayers_disclosed"] <= result.outcomes["DISCLOSED"]
    with store.session() as session:
        tin = session.execute(text("SELECT tin FROM disclosures LIMIT 1")).scalar_one()
    lines = accounting(store, tin)
    assert any(line["disclosed_item"] == "last_known_address" for line in lines)
    assert all(line["agency"] == "DHS-ICE" for line in lines)
    store.close()
    run = taxgate("report", "accounting", "--tin", tin, "--json")
    assert run.returncode == 0 and [json.loads(line) for line in run.stdout.splitlines()] == lines
    run = taxgate("report", "jct", "--year", date.today().year)
    assert run.returncode == 0 and "DHS-ICE" in run.stdout


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: {**p, "index": p["index"] + 0.9}, "is not an integer"),
        (lambda p: {**p, "index": str(p["index"])}, "whole number"),
        (lambda p: {**p, "size": "5_0"}, "whole number"),
        (
            lambda p: json.dumps(p).replace(f'"size": {p["size"]}', '"size": 1e400'),
            "is not an integer",
        ),
        (lambda p: {**p, "size": True}, "whole number"),
        (lambda p: {**p, "size": 2**64}, "whole number"),
        (lambda p: {**p, "index": p["size"]}, "not inside a tree"),
        (lambda p: {**p, "proof": ["!" * 44]}, "not base64"),
        (lambda p: {**p, "proof": ["AAAA"]}, "32 bytes"),
        (lambda p: {**p, "proof": p["proof"] * 40}, "at most 64"),
        (lambda p: {**p, "entry": {"kind": "decision"}}, "entry's text"),
        (lambda p: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (lambda p: " " * (2 << 20) + json.dumps(p), "at most"),
        (lambda p: b"\xff\xfe{}", "not JSON"),
        (lambda p: [p], "JSON object"),
        (lambda p: json.dumps({**p, "entry": "x"}).replace('"x"', '"\\ud800"'), "lone surrogate"),
    ],
    ids=[
        "float index",
        "text index",
        "underscored size",
        "1e400",
        "boolean",
        "huge",
        "index outside",
        "not base64",
        "short hash",
        "too many hashes",
        "entry not text",
        "deep nesting",
        "too large",
        "not utf-8",
        "not an object",
        "lone surrogate",
    ],
)
def test_a_malformed_proof_is_one_line_and_exit_2(processed, tmp_path, change, says):
    result, rows = processed
    proof = json.loads(taxgate("ledger", "prove", rows[0]["ledger_index"]).stdout)
    changed = change(proof)
    path = tmp_path / "bad.json"
    if isinstance(changed, bytes):
        path.write_bytes(changed)
    else:
        path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    run = taxgate("ledger", "check", path, "--key", (tmp_path / "ledger.pub").read_text().strip())
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-500:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], lines


@pytest.mark.parametrize(
    "target", ["taxgate.ledger.verify:stream", "taxgate.ledger.bindings:stream"]
)
def test_a_ctrl_c_in_verify_is_one_line_and_the_store_still_verifies(processed, tmp_path, target):
    """A Ctrl-C while `ledger verify` streams the store (the driver mid-read: a server-side cursor on
    PostgreSQL) says one line and exits 130: no traceback from the pool putting the connection back,
    nor from a stream closed after its connection. The store is untouched and verifies after."""
    run = subprocess.Popen(
        [sys.executable, "-m", "taxgate", "ledger", "verify"],
        env={**os.environ, **interrupted_env(tmp_path, target)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _, stderr = run.communicate(timeout=300)
    assert (tmp_path / "dying-hook" / "interrupted").exists(), (run.returncode, stderr)
    assert (run.returncode, stderr) == (130, "taxgate: stopped (Ctrl-C)\n")
    again = taxgate("ledger", "verify")
    assert again.returncode == 0, again.stderr
