"""Notices under orders: notice on receipt is owed once per batch with its due time; a notice before
transfer holds the batch's disclosures until the notice has been sent and its hours have run."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from taxgate.notices import NoticeError, list_notices, mark_sent
from taxgate.orders import add_order
from taxgate.pipeline import process
from taxgate.release import release_held
from taxgate.store.models import Batch

from support import STAY, assert_user_error, response_rows, taxgate

pytestmark = pytest.mark.slow  # notices over batches end to end


def test_notice_on_receipt_is_owed_once_with_its_due_time(world, tmp_path, store):
    add_order(store, {**STAY, "kind": "notice_on_receipt", "hours": 24})
    process(world["manifest"], world["master"], tmp_path / "one", store=store)
    process(world["manifest"], world["master"], tmp_path / "two", store=store)  # sent again
    (notice,) = list_notices(store)
    with store.session() as session:
        received = session.execute(select(Batch.received_at)).scalar_one()
    assert notice.kind == "court_receipt" and notice.recipient == "court, plaintiffs"
    assert notice.due_at == received + timedelta(hours=24)
    assert notice.body["rows_sha256"] and notice.body["docket"] == STAY["docket"]
    assert not notice.overdue(datetime.now(UTC)) and notice.overdue(
        datetime.now(UTC) + timedelta(hours=25)
    )
    assert all(
        r["outcome"] != "HELD" for r in response_rows(tmp_path / "one")
    )  # notice on receipt holds nothing
    mark_sent(store, [notice.id])
    with pytest.raises(NoticeError, match="was sent"):
        mark_sent(store, [notice.id])
    assert list_notices(store, unsent_only=True) == []


def test_notice_before_transfer_holds_until_the_notice_has_run_its_hours(world, tmp_path, store):
    add_order(store, {**STAY, "kind": "notice_before_transfer", "hours": 24})
    result = process(world["manifest"], world["master"], tmp_path / "out", store=store)
    held = [r for r in response_rows(tmp_path / "out") if r["outcome"] == "HELD"]
    assert result.outcomes.get("DISCLOSED", 0) == 0 and held
    assert all("NOTICE_PERIOD" in r["reasons"] for r in held)
    (notice,) = list_notices(store)  # one pre-transfer notice for the batch, due now
    assert notice.kind == "pre_transfer" and notice.overdue(
        datetime.now(UTC) + timedelta(seconds=1)
    )
    assert release_held(store) == []  # not sent: nothing leaves
    mark_sent(store, [notice.id], when=datetime.now(UTC) - timedelta(hours=23))
    assert release_held(store) == []  # sent, but the 24 hours have not run
    released = release_held(
        store, now=datetime.now(UTC) + timedelta(hours=1, minutes=1)
    )  # the period has run
    assert sorted(r["request_id"] for r in released) == sorted(r["request_id"] for r in held)
    assert release_held(store) == []


def test_notices_on_the_command_line(world, tmp_path, store):
    add_order(store, {**STAY, "kind": "notice_on_receipt", "hours": 2})
    process(world["manifest"], world["master"], tmp_path / "out", store=store)
    due = taxgate("notices", "due", "--json")
    assert due.returncode == 0, due.stderr
    (notice,) = [json.loads(line) for line in due.stdout.splitlines()]
    assert notice["kind"] == "court_receipt" and notice["overdue"] is False
    sent = taxgate("notices", "sent", notice["id"])
    assert sent.returncode == 0 and "recorded as sent" in sent.stdout
    assert_user_error(taxgate("notices", "sent", notice["id"]), "was sent")
    assert taxgate("notices", "due", "--json").stdout == ""
    released = taxgate("orders", "release", "--out", tmp_path)
    assert released.returncode == 0 and "0 held item(s) released" in released.stdout


def test_a_watcher_releases_held_items_when_the_notice_period_ends_once(world, tmp_path, store):
    import signal
    import subprocess
    import sys
    import time

    add_order(store, {**STAY, "kind": "notice_before_transfer", "hours": 24})
    process(world["manifest"], world["master"], tmp_path / "out", store=store)
    held = sorted(
        r["request_id"] for r in response_rows(tmp_path / "out") if r["outcome"] == "HELD"
    )
    (notice,) = list_notices(store)
    watchers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taxgate",
                "orders",
                "release",
                "--watch",
                "--every",
                "1",
                "--out",
                str(tmp_path / f"w{i}"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]  # two watchers: each item still leaves once
    try:
        time.sleep(3)
        assert not list(
            tmp_path.glob("w*/released-*.csv")
        )  # the notice is not sent: nothing leaves
        mark_sent(
            store, [notice.id], when=datetime.now(UTC) - timedelta(hours=24, seconds=1)
        )  # its period has run
        deadline = time.time() + 60
        while time.time() < deadline and not list(tmp_path.glob("w*/released-*.csv")):
            time.sleep(0.5)
        time.sleep(3)  # more rounds: nothing more may leave
    finally:
        # Both stopped before either is waited for: one waiting for the store's lock (SQLite's
        # busy timeout) stops only once the other has let it go.
        for w in watchers:
            w.send_signal(signal.SIGINT)
        for w in watchers:
            assert w.wait(timeout=60) == 0
    released = []
    for path in tmp_path.glob("w*/released-*.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            released += [r["request_id"] for r in csv.DictReader(fh)]
    assert sorted(released) == held and held
    assert release_held(store) == []
