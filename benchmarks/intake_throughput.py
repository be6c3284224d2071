"""Intake throughput on a batch of 1.28 million rows (the size of the 2025 datafile).

Prints rows per second for (1) intake alone: reading and parsing the CSV into requests, SHA-256
included; the same rows as pass 1 takes them (`RowStream.staged`: a CSV's well-formed rows as
tuples, no Request); and pass 1 whole (`pipeline.staging.stage`: those tuples into Parquet), with
pass 1 as it was before (each Request made, then taken apart into the tuple); and (2) the stages of
`taxgate process` through rules (intake + batch figures + every rule on every request), with the
identification and response stages timed beside them (left out with `--intake-only`).

    python benchmarks/intake_throughput.py [--rows 1280000] [--master-taxpayers 200000]
        [--manifest M] [--intake-only]

`--manifest` takes an existing batch instead (e.g. `_work/pipeline_2025/batch-1280000-2025`'s).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path
from unittest.mock import patch

from taxgate.intake import RowStream, read_manifest
from taxgate.intake.rows import staged_row
from taxgate.pipeline import process, staging
from taxgate.pipeline.staging import stage
from taxgate.policy import load_policies, policy_in_force
from taxgate.processes import batch_pace
from taxgate.store import open_store
from taxgate.synth import generate_batch, generate_master

WORK = Path(__file__).parent / "_work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_280_000)
    parser.add_argument("--master-taxpayers", type=int, default=200_000)
    parser.add_argument("--manifest", type=Path, help="an existing batch's manifest")
    parser.add_argument("--intake-only", action="store_true", help="leave out `taxgate process`")
    args = parser.parse_args()
    master = WORK / f"master-{args.master_taxpayers}.parquet"
    batch_dir = args.manifest.parent if args.manifest else WORK / f"batch-{args.rows}"
    if not master.exists() and not args.intake_only:
        generate_master(args.master_taxpayers, master, seed=7)
    manifest = batch_dir / "manifest.json"
    if not manifest.exists():
        started = time.perf_counter()
        generate_batch(master, batch_dir, args.rows, seed=11)
        print(f"(generated the batch in {time.perf_counter() - started:.0f} s)")
    size = (batch_dir / "requests.csv").stat().st_size

    parsed = read_manifest(manifest)
    started = time.perf_counter()
    stream = RowStream(parsed.rows_path, parsed.rows_format, 4000)
    for _ in stream:
        pass
    intake_s = time.perf_counter() - started
    print(
        f"rows:                       {stream.rows:,} ({stream.malformed:,} malformed), {size / 1024**2:,.0f} MiB CSV"
    )
    print(f"intake alone:               {intake_s:.1f} s = {stream.rows / intake_s:,.0f} rows/s")

    started = time.perf_counter()
    for _ in RowStream(parsed.rows_path, parsed.rows_format, 4000).staged():
        pass
    staged_s = time.perf_counter() - started
    print(f"as pass 1 reads them:       {staged_s:.1f} s = {stream.rows / staged_s:,.0f} rows/s")
    policy = policy_in_force(load_policies(None), date(2025, 7, 25))
    # The collector paced as `pipeline.process` paces it for a batch.
    with tempfile.TemporaryDirectory(dir=WORK) as work, batch_pace():
        started = time.perf_counter()
        stage(parsed, policy, Path(work))
        stage_s = time.perf_counter() - started
        before = RowStream(parsed.rows_path, parsed.rows_format, policy.thresholds.max_field_chars)
        before.staged = lambda: map(staged_row, iter(before))  # each Request made, then taken apart
        with patch.object(staging, "RowStream", lambda *args: before):
            started = time.perf_counter()
            stage(parsed, policy, Path(work))
            before_s = time.perf_counter() - started
    print(
        f"pass 1 (stage, to Parquet): {stage_s:.1f} s; made through Requests, as before: "
        f"{before_s:.1f} s"
    )
    if args.intake_only:
        return

    # A fresh store and signing key of its own, never the working folder's taxgate.db and key.
    for old in WORK.glob("intake-store.*"):
        old.unlink()
    os.environ["TAXGATE_LEDGER_KEY"] = str(WORK / "intake-store.key")
    store = open_store(f"sqlite:///{WORK / 'intake-store.db'}")
    try:
        result = process(manifest, master, WORK / "out", store=store)
    finally:
        store.close()
    s = result.seconds
    through_rules = s["intake"] + s["rules"]
    print(
        f"process, intake stage:      {s['intake']:.1f} s = {result.rows / s['intake']:,.0f} "
        "rows/s (parse + stage + batch keys)"
    )
    print(
        f"process, rules stage:       {s['rules']:.1f} s = {result.rows / s['rules']:,.0f} rows/s"
    )
    print(
        f"intake + rules:             {through_rules:.1f} s = {result.rows / through_rules:,.0f} rows/s"
    )
    print(f"identify (interim matcher): {s['identify']:.1f} s; decide + write: {s['decide']:.1f} s")
    print(f"process total:              {sum(s.values()):.1f} s; outcomes {result.outcomes}")
    print(
        f"peak memory:                {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GiB"
    )


if __name__ == "__main__":
    main()
