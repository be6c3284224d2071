"""The statute across batches (`taxgate.history`), attacked as a requester who splits its file would:
two halves of one officer's caseload decided at the same moment, a replayed practice that must not
leak into the statute's history, an audit that must see the history as it stood, and the figures
counted by the store's indexes, not by reading the past into Python. The sequence-of-batches cases
are data, in tests/conformance/cross_batch.yaml."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import text

from taxgate import history
from taxgate.history import key_of
from taxgate.normalize.text import fold
from taxgate.pipeline import process
from taxgate.policy import POLICY_DIR
from taxgate.remediation import audit
from taxgate.rules import KEYS_SQL
from taxgate.store import open_store

from support import CONFORMANCE

pytestmark = pytest.mark.slow  # batches end to end across a store

WORLD = yaml.safe_load((CONFORMANCE / "_world.yaml").read_text(encoding="utf-8"))
POLICY = POLICY_DIR / "demo-2025.1.toml"
COLUMNS = (
    "request_id",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "street",
    "unit",
    "city",
    "state",
    "zip",
    "date_of_birth",
    "tin",
    "tax_periods",
    "statute",
    "case_number",
    "removal_order_date",
    "removal_order_number",
    "engaged_official",
    "relevance",
    "requested_items",
)


def write_batch(
    folder: Path, batch_ref: str, rows: list[dict], submitted_at: str = "2025-07-25T14:00:00Z"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        **WORLD["manifest"],
        "batch_ref": batch_ref,
        "submitted_at": submitted_at,
        "requests": "rows.csv",
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with open(folder / "rows.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(str({**WORLD["request"], **row}.get(c, "") or "") for c in COLUMNS)
    return folder / "manifest.json"


def caseload(prefix: str, cases: int, officer: str = "Officer Avery Quinn") -> list[dict]:
    return [
        {
            "request_id": f"{prefix}-{n}",
            "case_number": f"{prefix}-CASE-{n}",
            "engaged_official": officer,
            "relevance": f"Subject re-entered after removal; address needed for warrant {prefix}-{n}.",
        }
        for n in range(1, cases + 1)
    ]


def decisions(out: Path) -> list[dict]:
    with open(out / "auditors" / "decisions.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def implausible(out: Path) -> list[bool]:
    return ["ENGAGED_OFFICIAL_IMPLAUSIBLE" in d["reasons"].split(";") for d in decisions(out)]


def test_two_halves_of_one_caseload_decided_at_once_are_caught(
    world, tmp_path, database_url, monkeypatch
):
    """Two servers on one store take one officer's 60 cases as two batches of 30 at the same moment.
    Each half is under the limit of 50; together they are over it, so the half registered second must
    be refused. The registration is slowed inside its transaction, so that without the lock both
    would count only themselves (which is what this test catches)."""
    registered = history.History._register

    def slow_register(self, *args):
        registered(self, *args)
        time.sleep(1.0)  # the other batch is at the door now

    monkeypatch.setattr(history.History, "_register", slow_register)
    manifests = [
        write_batch(tmp_path / f"half-{i}", f"HALF-{i}", caseload(f"H{i}", 30)) for i in (1, 2)
    ]
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    stores = [
        open_store(database_url) for _ in manifests
    ]  # an engine each, as two servers would have

    def run(manifest: Path, store) -> None:
        try:
            start.wait()
            process(manifest, world["master"], manifest.parent / "out", store=store)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(manifests, stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    halves = [implausible(m.parent / "out") for m in manifests]
    assert sorted(all(h) for h in halves) == [False, True], (
        "exactly the half registered second is refused"
    )
    assert not any(halves[0] if not all(halves[0]) else halves[1]), (
        "the first half is under the limit"
    )
    second = manifests[[all(h) for h in halves].index(True)].parent / "out"
    with open(second / "auditors" / "evidence.jsonl", encoding="utf-8") as fh:
        figure = json.loads(fh.readline())["figures"]["ENGAGED_OFFICIAL_IMPLAUSIBLE"]
    assert figure["cases"] == 60 and figure["in_this_batch"] == 30


def test_a_replayed_practice_is_not_the_statutes_history_and_an_audit_sees_its_own(
    world, tmp_path, store
):
    """The demo replays the same file as practised in 2025: those rows must not make the statute's
    batches duplicates or overloaded. An audit of a replayed batch judges it against the replayed
    batches before it, as they stood when it was received."""
    people = pq.read_table(world["master"]).to_pylist()
    latest = {}
    for p in people:
        if p["tin"] not in latest or p["tax_year"] > latest[p["tin"]]["tax_year"]:
            latest[p["tin"]] = p
    chosen = list(latest.values())[:30]

    def rows(prefix):
        out = []
        for n, p in enumerate(chosen, start=1):
            out.append(
                {
                    **{
                        k: p[k] or ""
                        for k in (
                            "first_name",
                            "middle_name",
                            "last_name",
                            "suffix",
                            "street",
                            "unit",
                            "city",
                            "state",
                            "zip",
                            "date_of_birth",
                            "tin",
                        )
                    },
                    **caseload(prefix, 30)[n - 1],
                }
            )
        return out

    past = [write_batch(tmp_path / f"replay-{i}", f"PAST-{i}", rows(f"P{i}")) for i in (1, 2)]
    for manifest in past:
        result = process(
            manifest,
            world["master"],
            manifest.parent / "out",
            store=store,
            rule_set="as-practised-2025",
            replay=True,
        )
        assert (
            result.outcomes.get("DISCLOSED", 0) > 20
        )  # the TIN path disclosed them, checking nothing
    # The statute's first batch for this officer: the 60 replayed cases are another practice's.
    lawful = write_batch(tmp_path / "lawful", "LAWFUL-1", rows("P1"))
    process(lawful, world["master"], lawful.parent / "out", store=store)
    assert not any(implausible(lawful.parent / "out"))
    assert not any("DUPLICATE_REQUEST" in d["reasons"] for d in decisions(lawful.parent / "out"))

    first = audit(store, past[0], world["master"], tmp_path / "audit-1")
    second = audit(store, past[1], world["master"], tmp_path / "audit-2")
    with open(second.findings_file, newline="", encoding="utf-8") as fh:
        found = list(csv.DictReader(fh))
    assert second.not_made == second.audited and found, (
        "the second replayed batch takes the officer to 60"
    )
    assert all("ENGAGED_OFFICIAL_IMPLAUSIBLE" in f["reasons_now"].split(";") for f in found)
    with open(first.findings_file, newline="", encoding="utf-8") as fh:
        assert not any(
            "ENGAGED_OFFICIAL_IMPLAUSIBLE" in f["reasons_now"] for f in csv.DictReader(fh)
        ), (
            "the first replayed batch is judged as it stood: 30 cases, nothing registered after it counts"
        )


def test_the_stored_keys_are_the_folded_text_hashed_the_same_in_python_and_duckdb():
    """The keys outlive DuckDB versions and processes: MD5 of the folded text, 60 bits."""
    con = duckdb.connect()
    con.execute("""CREATE TABLE staged AS SELECT 1 AS row_number, '' AS parse_error, 'R-1' AS request_id,
        'María' AS first_name, 'García López' AS last_name, '1980-02-03' AS date_of_birth, 'ICE-0001' AS case_number,
        'Officer  AVERY Quinn.' AS engaged_official, 'The subject, re-entered!' AS relevance""")
    row = con.execute(KEYS_SQL).fetchone()
    assert row[1:6] == (
        key_of("R-1"),
        key_of("maria|garcia lopez|1980-02-03|ice0001"),
        key_of(fold("Officer AVERY Quinn")),
        key_of("ice0001"),
        key_of(fold("The subject re-entered")),
    )
    assert all(0 <= k < 2**60 for k in row[1:6])


def test_the_figures_are_counted_by_the_stores_indexes(store, tmp_path, world):
    """Over a history of millions of rows only an index range per key of the batch's may be read:
    each query's plan searches the key tables by their clustered key, never scans them."""
    manifest = write_batch(tmp_path / "b", "PLAN-1", caseload("PL", 3))
    process(manifest, world["master"], tmp_path / "b" / "out", store=store)
    queries = [
        history._OFFICIALS,
        history._REASONS,
        history._EARLIER.format(table="history_request_ids"),
        history._EARLIER.format(table="history_person_cases"),
    ]
    with store.engine.connect() as connection:
        for query in queries:
            window, _, earlier = history.batch_sets(1, 2, date(2024, 7, 25), date(2024, 7, 25))
            query = (
                query.replace(":keys", "1, 2, 3")
                .replace(":window", window)
                .replace(":earlier", earlier)
            )
            query = query.replace(":sk", "1")
            if store.dialect == "sqlite":
                plan = " | ".join(
                    r[-1] for r in connection.execute(text("EXPLAIN QUERY PLAN " + query))
                )
                assert "USING PRIMARY KEY (scope=? AND" in plan, plan
                assert "SCAN" not in plan, (
                    plan
                )  # the batches too: by (scope, seq), never read whole
            else:
                connection.execute(text("SET enable_seqscan = off"))
                plan = " | ".join(r[0] for r in connection.execute(text("EXPLAIN " + query)))
                assert "Seq Scan on history_" not in plan, plan


def test_a_batch_resumed_keeps_its_figures_and_registers_once(world, tmp_path, store):
    """A run killed after registering and started again is judged on the same figures, and its keys
    are not registered twice (the second batch would otherwise count itself)."""
    first = write_batch(tmp_path / "a", "RESUME-1", caseload("RA", 30))
    process(first, world["master"], tmp_path / "a" / "out", store=store)
    again = process(first, world["master"], tmp_path / "a" / "again", store=store)
    assert again.resumed
    assert (
        implausible(tmp_path / "a" / "again") == implausible(tmp_path / "a" / "out") == [False] * 30
    )
    with store.engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM history_request_ids")).scalar_one() == 30
        )
        assert connection.execute(text("SELECT count(*) FROM history_batches")).scalar_one() == 1
    second = write_batch(tmp_path / "b", "RESUME-2", caseload("RB", 21))
    process(second, world["master"], tmp_path / "b" / "out", store=store)
    assert all(implausible(tmp_path / "b" / "out"))


def test_an_agency_is_not_judged_on_anothers_history(store, tmp_path, world):
    """The history is the requester's own: another agency's officer of the same name, on the same
    case numbers, is another officer, and its requests are not duplicates of the first agency's."""
    policy = tmp_path / "policy.toml"
    policy.write_text(
        POLICY.read_text(encoding="utf-8")
        + """
[[agencies]]
code = "DHS-HSI"
name = "Homeland Security Investigations"

[[agencies.signers]]
name = "Casey Morgan"
title = "Director, U.S. Immigration and Customs Enforcement"
effective_from = 2025-01-01

[[agreements]]
agency = "DHS-HSI"
name = "Memorandum of understanding on § 6103(i)(2) requests"
effective_from = 2025-04-07
effective_to = 2027-12-31
""",
        encoding="utf-8",
    )
    ice = write_batch(tmp_path / "ice", "AGENCY-1", caseload("AG", 30))
    hsi = write_batch(tmp_path / "hsi", "AGENCY-1", caseload("AG", 30))
    raw = json.loads(hsi.read_text(encoding="utf-8"))
    hsi.write_text(json.dumps({**raw, "agency": "DHS-HSI"}), encoding="utf-8")
    for manifest in (ice, hsi):
        process(manifest, world["master"], manifest.parent / "out", store=store, policy_path=policy)
        assert not any(implausible(manifest.parent / "out"))
        assert not any(
            "DUPLICATE_REQUEST" in d["reasons"] for d in decisions(manifest.parent / "out")
        )
    again = write_batch(tmp_path / "ice-2", "AGENCY-2", caseload("AH", 21))
    process(again, world["master"], again.parent / "out", store=store, policy_path=policy)
    assert all(implausible(again.parent / "out")), "the first agency's own history still counts"


def test_explain_gives_the_figure_behind_a_cross_batch_refusal(world, tmp_path, store):
    """`taxgate explain` on a request refused on the history says how many, against what limit, since
    when and from which batch, with the citation: what a court reads, in one line."""
    for name, prefix, cases in (("a", "XA", 30), ("b", "XB", 21)):
        manifest = write_batch(tmp_path / name, f"EXPLAIN-{name}", caseload(prefix, cases))
        process(manifest, world["master"], tmp_path / name / "out", store=store)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxgate",
            "explain",
            "XB-1",
            "--response",
            str(tmp_path / "b" / "out"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert run.returncode == 0, run.stderr
    assert (
        "ENGAGED_OFFICIAL_IMPLAUSIBLE (26 U.S.C. § 6103(i)(2)(A)): 51 cases for the officer within 365 days "
        "(21 in this batch; the limit is 50), counted since 2025-07-25, from batch EXPLAIN-a (batch 1)"
    ) in run.stdout


def test_a_batch_dated_in_the_future_is_counted_as_of_its_receipt(world, tmp_path, store):
    """A requester that dates its second batch a year ahead would move the window past the first.
    No batch is judged as of a day after it arrived: its date is clamped to the day of receipt."""
    first = write_batch(
        tmp_path / "a", "AHEAD-1", caseload("FA", 30), submitted_at="2026-11-30T10:00:00Z"
    )
    process(first, world["master"], tmp_path / "a" / "out", store=store, today=date(2026, 11, 30))
    ahead = write_batch(
        tmp_path / "b", "AHEAD-2", caseload("FB", 30), submitted_at="2027-12-01T10:00:00Z"
    )
    result = process(
        ahead, world["master"], tmp_path / "b" / "out", store=store, today=date(2026, 12, 1)
    )
    assert all(implausible(tmp_path / "b" / "out")), (
        "the first batch is inside the window after all"
    )
    with open(tmp_path / "b" / "out" / "auditors" / "evidence.jsonl", encoding="utf-8") as fh:
        figure = json.loads(fh.readline())["figures"]["ENGAGED_OFFICIAL_IMPLAUSIBLE"]
    assert figure["cases"] == 60 and figure["since"] == "2026-11-30"
    assert result.outcomes.get("DISCLOSED", 0) == 0


def test_a_batch_dated_far_back_still_counts_what_came_before_it(world, tmp_path, store):
    """Dating a batch two years back does not hide the batches already registered: every batch
    registered earlier whose date is not before the window counts, however late its date."""
    first = write_batch(
        tmp_path / "a", "BACK-1", caseload("BA", 30), submitted_at="2026-06-01T10:00:00Z"
    )
    process(first, world["master"], tmp_path / "a" / "out", store=store)
    back = write_batch(
        tmp_path / "b", "BACK-2", caseload("BB", 30), submitted_at="2025-06-01T10:00:00Z"
    )
    process(back, world["master"], tmp_path / "b" / "out", store=store)
    assert all(implausible(tmp_path / "b" / "out"))
