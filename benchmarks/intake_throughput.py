"""Intake throughput on a batch of 1.28 million rows (the size of the 2025 datafile).

Prints rows per second for (1) intake alone: reading and parsing the CSV into requests, SHA-256
included; and (2) the stages of `taxgate process` through rules (intake + batch figures + every
rule on every request), with the identification and response stages timed beside them.

    python benchmarks/intake_throughput.py [--rows 1280000] [--master-taxpayers 200000]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from taxgate.intake import RowStream, read_manifest
from taxgate.pipeline import process
from taxgate.synth import generate_batch, generate_master

WORK = Path(__file__).parent / "_work"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_280_000)
    parser.add_argument("--master-taxpayers", type=int, default=200_000)
    args = parser.parse_args()
    master = WORK / f"master-{args.master_taxpayers}.parquet"
    batch_dir = WORK / f"batch-{args.rows}"
    if not master.exists():
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

    result = process(manifest, master, WORK / "out")
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
