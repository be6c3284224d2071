"""Exactly once: a batch sent twice, or a run killed with SIGKILL mid-batch (or stopped by a Ctrl-C)
and started again, gives each decision and each disclosure once, the same response, and a ledger
that verifies."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from taxgate.pipeline import process
from taxgate.store import open_store
from taxgate.store.models import Batch, DecisionRecord, Disclosure, LedgerEntry
from taxgate.synth import generate_batch

from dying import died, dying_env, interrupted_env
from support import control_store, findings

pytestmark = pytest.mark.slow  # runs killed and started again


def response(out) -> list[dict]:
    with open(out / "response.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def counts(url: str) -> dict:
    store = open_store(url)
    with store.session() as session:
        found = {
            "batches": session.scalar(select(func.count(Batch.id))),
            "decisions": session.scalar(select(func.count(DecisionRecord.id))),
            "distinct_rows": session.scalar(
                select(func.count(func.distinct(DecisionRecord.row_number)))
            ),
            "disclosures": session.scalar(select(func.count(Disclosure.id))),
            "entries": session.scalar(select(func.count(LedgerEntry.idx))),
        }
    problems = findings(store)
    store.close()
    return {**found, "problems": problems}


def test_a_batch_sent_twice_is_decided_and_ledgered_once(world, tmp_path, database_url):
    first = process(world["manifest"], world["master"], tmp_path / "one")
    after_first = counts(database_url)
    second = process(world["manifest"], world["master"], tmp_path / "two")
    after_second = counts(database_url)
    assert not first.resumed and second.resumed and first.batch_id == second.batch_id
    assert after_second == after_first
    assert after_first["decisions"] == after_first["distinct_rows"] == first.rows
    assert (
        after_first["entries"] == 1 + first.rows + first.outcomes["DISCLOSED"] + 1
    )  # received, rows, disclosures, completed
    assert after_first["problems"] == []
    assert response(tmp_path / "one") == response(tmp_path / "two")  # ledger indexes included


def test_a_run_killed_mid_batch_and_started_again_records_each_event_once(
    world, tmp_path, database_url
):
    """Killed inside its fourth chunk's transaction (`dying`: on cue, not on a timer), after three
    chunks of 25 rows committed and the fourth's decisions and entries written but not committed."""
    manifest = generate_batch(world["master"], tmp_path / "batch", 6_000, seed=11)
    env = {**os.environ, "TAXGATE_RECORD_ROWS": "25", "TAXGATE_WORKERS": "1"}
    command = [
        sys.executable,
        "-m",
        "taxgate",
        "process",
        str(manifest),
        "--master",
        str(world["master"]),
        "--out",
        str(tmp_path / "out"),
    ]
    victim = subprocess.run(
        command, env={**env, **dying_env(tmp_path, chunk=4)}, capture_output=True, timeout=600
    )
    assert victim.returncode == -signal.SIGKILL and died(tmp_path), victim.stderr.decode()
    store = open_store(database_url)
    with store.session() as session:
        batch = session.execute(select(Batch)).scalar_one()
        assert batch.status == "processing" and batch.committed_rows == 75  # three chunks, no more
        assert session.scalar(select(func.count(DecisionRecord.id))) == 75  # the fourth rolled back
        total = batch.rows
    store.close()

    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert restarted.returncode == 0, restarted.stderr
    found = counts(database_url)
    assert found["batches"] == 1 and found["decisions"] == found["distinct_rows"] == total
    assert found["problems"] == []

    # The same batch on a fresh store, never interrupted, decides every row the same way.
    with control_store(tmp_path) as store:
        control = process(manifest, world["master"], tmp_path / "control", store=store)
    rows = response(tmp_path / "out")
    assert [(r["request_id"], r["outcome"], r["address_street"]) for r in rows] == [
        (r["request_id"], r["outcome"], r["address_street"]) for r in response(tmp_path / "control")
    ]
    disclosed = sum(r["outcome"] == "DISCLOSED" for r in rows)
    assert found["disclosures"] == disclosed == control.outcomes["DISCLOSED"] > 0
    assert found["entries"] == 1 + total + disclosed + 1
    assert len({r["ledger_index"] for r in rows}) == total == len(rows)


@pytest.mark.parametrize(
    "target, call, delay, signal_name, times",
    [
        # preparing the master, in the load's thread
        ("taxgate.identify.master:_prepare", 1, 0.2, "SIGINT", 1),
        ("taxgate.identify:request_feature_columns", 1, 0.0, "SIGINT", 1),  # in a rules worker
        ("taxgate.identify:identify", 1, 0.3, "SIGINT", 1),  # amid Splink's queries on DuckDB
        ("taxgate.release.batch:insert_rows", 2, 0.0, "SIGINT", 1),  # in a chunk's transaction
        # writing the batch's keys into the requester's history (a COPY on PostgreSQL)
        ("taxgate.history:_bulk", 1, 0.0, "SIGINT", 1),
        # three Ctrl-Cs while the workers start: the second and third must not cut the clean-up short
        ("taxgate.pipeline:batch_figures", 1, 0.3, "SIGINT", 3),
        ("taxgate.identify:identify", 1, 0.3, "SIGTERM", 1),  # `kill`, a service stopping
    ],
    ids=[
        "preparing the master",
        "in a rules worker",
        "identifying",
        "recording",
        "registering the history",
        "three times as workers start",
        "SIGTERM",
    ],
)
def test_a_ctrl_c_stops_a_run_in_one_line_and_the_same_command_finishes_it(
    world, tmp_path, database_url, target, call, delay, signal_name, times
):
    """A Ctrl-C (SIGINT to the run's process group, as a terminal sends it; or SIGTERM), wherever
    it lands: the run says one line and exits 128 + the signal; its workers end without a word (no
    traceback from any process); nothing of it is left running; its work folder, which holds the
    requests, is gone; a master it was preparing is not cached half-made. The same command again
    finishes the batch, each event recorded once."""
    master = world["master"]
    if "master" in target:  # a master of its own, never prepared
        master = tmp_path / "master.parquet"
        shutil.copy(world["master"], master)
    manifest = generate_batch(world["master"], tmp_path / "batch", 6_000, seed=11)
    env = {**os.environ, "TAXGATE_RECORD_ROWS": "500", "TAXGATE_WORKERS": "2"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "taxgate", "process", str(manifest)]
    command += ["--master", str(master), "--out", str(out)]
    run = subprocess.Popen(
        command,
        env={**env, **interrupted_env(tmp_path, target, call, delay, signal_name, times)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job
    )
    _, stderr = run.communicate(timeout=600)
    assert (tmp_path / "dying-hook" / "interrupted").exists()
    said = "Ctrl-C" if signal_name == "SIGINT" else signal_name
    assert run.returncode == 128 + getattr(signal, signal_name), stderr
    assert stderr == f"taxgate: stopped ({said})\n"
    deadline = time.monotonic() + 30
    while _group_alive(run.pid):
        assert time.monotonic() < deadline, "a process of the stopped run is still running"
        time.sleep(0.1)
    assert not (out / ".work").exists()
    if "master" in target:
        assert not list(tmp_path.glob("master.taxgate-*"))

    restarted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert restarted.returncode == 0, restarted.stderr
    found = counts(database_url)
    assert found["batches"] == 1 and found["decisions"] == found["distinct_rows"]
    assert found["decisions"] == len(response(out)) > 5_000
    assert found["problems"] == []


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
