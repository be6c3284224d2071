"""The single-request path (identify.single): one request decided against a loaded model and
master, timed per request. Prints p50 and p95 per master size, and where the time goes.

    python benchmarks/identify_single.py [--taxpayers 20000 200000] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

from taxgate.identify.single import Identifier
from taxgate.intake import RowStream, read_manifest
from taxgate.policy import load_policies, policy_in_force
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "single"


def _ms(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--taxpayers", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    policy = policy_in_force(load_policies(None), date(2025, 7, 25)).identification
    print(
        f"{'taxpayers':>10} {'master rows':>11} {'load s':>7} {'p50 ms':>7} {'p95 ms':>7}   p50 ms by step"
    )
    for taxpayers in args.taxpayers:
        folder = WORK / str(taxpayers)
        folder.mkdir(parents=True, exist_ok=True)
        master = folder / "master.parquet"
        if not master.exists():
            generate_master(taxpayers, master, seed=41)
        manifest = generate_batch(master, folder / "batch", args.requests, seed=43, mix=Mix.clean())
        parsed = read_manifest(manifest)
        requests = list(RowStream(parsed.rows_path, parsed.rows_format, 1000))
        started = time.perf_counter()
        identifier = Identifier(master, policy)
        loaded = time.perf_counter() - started
        identifier.identify(requests[0])  # the first call warms the caches
        totals, steps = [], {"candidates": [], "score": [], "decide": []}
        con = identifier._con
        for request in requests:
            started = time.perf_counter()
            identifier.identify(request)
            totals.append(time.perf_counter() - started)
        for request in requests[:50]:  # the same steps, timed one by one
            take, *timed = identifier.steps(request)
            take()
            for name, step in zip(steps, timed):
                started = time.perf_counter()
                step()
                steps[name].append(time.perf_counter() - started)
        rows = con.execute("SELECT count(*) FROM master_addresses").fetchall()[0][0]
        by_step = ", ".join(f"{k} {statistics.median(v) * 1000:.0f}" for k, v in steps.items())
        print(
            f"{taxpayers:10,} {rows:11,} {loaded:7.1f} {_ms(totals, 0.5):7.0f} {_ms(totals, 0.95):7.0f}   {by_step}"
        )
        identifier.close()


if __name__ == "__main__":
    main()
