"""Generator throughput: write a taxpayer master of about ten million rows and print rows per second.

python benchmarks/synth_throughput.py [--rows 10000000] [--out benchmarks/_work/master10m.parquet]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from taxgate.synth import generate_master

ROWS_PER_TAXPAYER = 4.28  # measured average of the generator's filing years per person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "_work" / "master10m.parquet"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    taxpayers = int(args.rows / ROWS_PER_TAXPAYER)
    started = time.perf_counter()
    rows, people = generate_master(taxpayers, args.out, seed=args.seed)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"master rows:        {rows:,} ({people:,} taxpayers)")
    print(f"wall time:          {elapsed:.1f} s")
    print(f"generator rows/s:   {rows / elapsed:,.0f}")
    print(f"peak memory:        {peak:.2f} GiB")
    print(f"file size:          {args.out.stat().st_size / 1024**2:,.0f} MiB -> {args.out}")


if __name__ == "__main__":
    main()
