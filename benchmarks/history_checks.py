"""What the cross-batch checks add to the rules stage (issue 14's figure).

A batch shaped like the 2025 datafile (1.28M requests by default) is judged twice by the pipeline's
own passes (`pipeline.decide_staged`, stopped after the rules): once on its own figures alone (the
rules stage as it was), once against the agency's history in the store: registering the batch's keys
and counting, in indexed SQL, cases per officer and uses of a reason over the window and duplicates
over every earlier request. The history holds `--history` registered requests (10M by default) of
100 earlier batches over two years, planted so that the checks have work to do: 10% of the history
names the batch's busiest officer, 5% carries its commonest reason, and 1% of the batch's request
ids and persons + cases were asked before. The batch alone is judged twice, before and after, and
the faster run counted, so that warming up is not charged to the history.

    python benchmarks/history_checks.py [--requests 1280000] [--history 10000000] [--database-url URL]

Prints the seconds of each part, the added share of the rules stage (target: under 10%) and the
refusals the history added. Work files go to benchmarks/_work/history (removed unless --keep).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import text

WORK = Path(__file__).parent / "_work" / "history"
os.environ.setdefault("TAXGATE_LEDGER_KEY", str(WORK / "taxgate-ledger.key"))

from taxgate.history import History, scope_of  # noqa: E402
from taxgate.intake import read_manifest  # noqa: E402
from taxgate.pipeline import decide_staged, stage, workspace  # noqa: E402
from taxgate.policy import load_policies, policy_in_force  # noqa: E402
from taxgate.rules import named_rule_set  # noqa: E402
from taxgate.store import open_store  # noqa: E402
from taxgate.synth import Mix, generate_batch, generate_master  # noqa: E402

AS_OF = date(2025, 7, 25)
EARLIER_BATCHES = 100


class _Stop(Exception):
    """Raised from the lap callback once the rules have run (the master is read before, timed apart):
    identification is not measured here."""


def judge(
    manifest, policy, history: History | None, out: Path, rows: int = 0
) -> tuple[dict[str, float], dict]:
    laps: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        laps[name] = now - clock[0]
        clock[0] = now
        if name == "rules":
            raise _Stop

    with workspace(out) as (work, con):
        shutil.copy(out.parent / "staged.parquet", work / "staged.parquet")
        clock[0] = time.perf_counter()
        try:
            next(
                decide_staged(
                    con,
                    work,
                    out.parent / "master.parquet",
                    manifest,
                    policy,
                    named_rule_set("statute"),
                    AS_OF,
                    rows=rows,
                    lap=lap,
                    history=history,
                    block_rows=10**12,
                )
            )  # one block: every rule first
        except _Stop:
            pass
        counts = con.execute(
            """SELECT count(*) FILTER (WHERE official_cases > ?),
                                       count(*) FILTER (WHERE relevance_repeats > ?),
                                       count(*) FILTER (WHERE earlier_request <> '' OR earlier_person_case <> '')
                                FROM row_stats""",
            [policy.thresholds.official_max_cases, policy.thresholds.relevance_max_repeats],
        ).fetchone()
    return laps, dict(
        zip(("officer over the limit", "reason over the limit", "asked before"), counts)
    )


def build_history(store, con_keys, rows: int) -> int:
    """`rows` registered requests of EARLIER_BATCHES batches over two years, with the planted
    overlaps; returns the id of the batch being judged (registered after them)."""
    top_official, top_reason = con_keys.execute("""
        SELECT (SELECT official_key FROM batch_keys WHERE official_key IS NOT NULL GROUP BY 1 ORDER
            BY count(*) DESC LIMIT 1),
               (SELECT relevance_key FROM batch_keys WHERE relevance_key IS NOT NULL GROUP BY 1
                   ORDER BY count(*) DESC LIMIT 1)
    """).fetchone()
    asked = con_keys.execute(
        "SELECT request_key, person_case_key FROM batch_keys USING SAMPLE 1 PERCENT (reservoir, 7)"
    ).fetchall()
    scope = scope_of("DHS-ICE", "statute")
    sk = 1  # the scope's number (history_scopes)
    per_batch = max(1, rows // EARLIER_BATCHES)
    with store.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO history_scopes (id, scope) VALUES (1, :scope)"), {"scope": scope}
        )
        for n in range(1, EARLIER_BATCHES + 2):
            as_of = AS_OF - timedelta(days=730 * (EARLIER_BATCHES - n + 1) // EARLIER_BATCHES)
            connection.execute(
                text(
                    "INSERT INTO batches (id, agency, batch_ref, manifest_sha256, rows_sha256, "
                    "submitted_at, received_at, "
                    "as_of, rows, policy_version, rule_set_version, model_version, status, "
                    "committed_rows, received_index, "
                    "manifest_path, signed_by) VALUES (:n, 'DHS-ICE', :ref, '', :sha, '', :at, :as_of, 0, '', '', '', "
                    "'done', 0, :n, '', '')"
                ),
                {
                    "n": n,
                    "ref": f"HISTORY-{n}",
                    "sha": f"{n:064d}",
                    "at": "2025-07-25 00:00:00",
                    "as_of": as_of.isoformat(),
                },
            )
            if n <= EARLIER_BATCHES:
                connection.execute(
                    text(
                        "INSERT INTO history_batches (batch_id, scope, seq, as_of, received, requests) "
                        "VALUES (:n, :scope, :n, :as_of, :as_of, :rows)"
                    ),
                    {"n": n, "scope": scope, "as_of": as_of.isoformat(), "rows": per_batch},
                )
        if store.dialect == "sqlite":
            series = f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {rows}) SELECT x FROM s"
            rnd = "(abs(random()) % 1152921504606846976)"
        else:
            series = f"SELECT x FROM generate_series(1, {rows}) AS x"
            rnd = "(floor(random() * 1152921504606846976))::bigint"
        batch = f"((x - 1) / {per_batch} % {EARLIER_BATCHES} + 1)"
        for table, select_ in (
            ("history_request_ids (scope, key, batch_id, row_number)", f"{sk}, {rnd}, {batch}, x"),
            ("history_person_cases (scope, key, batch_id, row_number)", f"{sk}, {rnd}, {batch}, x"),
            (
                "history_official_cases (scope, official_key, case_key, batch_id)",
                f"{sk}, CASE WHEN x % 10 = 0 THEN {top_official} ELSE x % 20000 END, {rnd}, {batch}",
            ),
        ):
            # in key order: the history grew batch by batch, but a random-order build only costs setup time
            connection.execute(
                text(
                    f"INSERT INTO {table} SELECT * FROM (SELECT {select_} FROM ({series}) AS t) AS u "
                    "ORDER BY 1, 2, 3, 4"
                )
            )
        # reasons are kept per batch: a pool of 2M texts, and the batch's commonest one in 5% of rows
        connection.execute(
            text(
                f"INSERT INTO history_reasons (scope, relevance_key, batch_id, uses) "
                f"SELECT {sk}, x % 2000000 + 1000 * {batch}, {batch}, 1 FROM ({series}) AS t WHERE x % 20 <> 0"
            )
        )
        connection.execute(
            text(
                "INSERT INTO history_reasons (scope, relevance_key, batch_id, uses) "
                "VALUES (:s, :k, :b, :uses)"
            ),
            [
                {"s": sk, "k": top_reason, "b": n, "uses": per_batch // 20}
                for n in range(1, EARLIER_BATCHES + 1)
            ],
        )
        for table in ("history_request_ids", "history_person_cases"):
            column = 0 if table == "history_request_ids" else 1
            keys = sorted({row[column] for row in asked if row[column] is not None})
            connection.execute(
                text(
                    f"INSERT INTO {table} (scope, key, batch_id, row_number) VALUES (:s, :k, 1, :r)"
                ),
                [{"s": sk, "k": k, "r": rows + i + 1} for i, k in enumerate(keys)],
            )
    with store.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return EARLIER_BATCHES + 1


def world(requests: int, taxpayers: int) -> tuple:
    """The batch, staged (WORK/staged.parquet), its manifest and the policy."""
    started = time.perf_counter()
    generate_master(taxpayers, WORK / "master.parquet", seed=3)
    manifest_path = generate_batch(
        WORK / "master.parquet", WORK / "batch", requests, seed=4, mix=Mix.datafile_2025()
    )
    manifest = read_manifest(manifest_path)
    policy = policy_in_force(load_policies(), AS_OF)
    with workspace(WORK / "staging", keep_work=True) as (work, con):
        stream = stage(manifest, policy, work)
    shutil.move(WORK / "staging" / ".work" / "staged.parquet", WORK / "staged.parquet")
    print(
        f"Batch: {stream.rows:,} requests (2025 mix), staged in {time.perf_counter() - started:.0f} s"
    )
    return manifest, policy, stream.rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_280_000)
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--taxpayers", type=int, default=200_000)
    parser.add_argument(
        "--database-url", default=None, help="default: a fresh SQLite file in the work folder"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        manifest, policy, rows = world(args.requests, args.taxpayers)
        alone, refused_alone = judge(manifest, policy, None, WORK / "alone", rows)

        url = args.database_url or f"sqlite:///{WORK / 'taxgate.db'}"
        store = open_store(url)
        started = time.perf_counter()
        import duckdb

        keys = duckdb.connect()
        keys.execute(
            f"CREATE TABLE staged AS SELECT * FROM read_parquet('{WORK / 'staged.parquet'}')"
        )
        from taxgate.rules import KEYS_SQL

        keys.execute(f"CREATE TABLE batch_keys AS {KEYS_SQL}")
        batch_id = build_history(store, keys, args.history)
        keys.close()
        print(
            f"History: {args.history:,} registered requests in {EARLIER_BATCHES} batches over two years "
            f"({store.dialect}), built in {time.perf_counter() - started:.0f} s"
        )
        history = History(
            store,
            batch_id,
            scope_of("DHS-ICE", "statute"),
            AS_OF,
            policy.history_window_days,
            received=AS_OF,
        )
        with_history, refused_with = judge(manifest, policy, history, WORK / "with", rows)
        again, _ = judge(
            manifest, policy, None, WORK / "alone-again", rows
        )  # the same process, as warm as the others
        alone = {k: min(alone[k], again[k]) for k in alone}
        store.close()
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)

    rules_stage = alone["history"] + alone["rules"]
    added = with_history["history"] - alone["history"]
    print()
    print(f"{'':44}{'batch alone':>14}{'with history':>14}")
    print(
        f"{'batch figures (keys, SQL; + history)':44}{alone['history']:>13.1f}s{with_history['history']:>13.1f}s"
    )
    print(f"{'judging every request':44}{alone['rules']:>13.1f}s{with_history['rules']:>13.1f}s")
    print(
        f"{'rules stage':44}{rules_stage:>13.1f}s{with_history['history'] + with_history['rules']:>13.1f}s"
    )
    print()
    for what in refused_alone:
        print(
            f"  rows with {what}: {refused_alone[what]:,} alone, {refused_with[what]:,} with history"
        )
    print(
        f"\nThe history checks add {added:.1f} s to a rules stage of {rules_stage:.1f} s: "
        f"{100 * added / rules_stage:.1f}% (target: under 10%)."
    )


if __name__ == "__main__":
    main()
