"""Where the rules stage spends its time: cProfile of one chunk of the rules pass
(`pipeline.judging.judge_chunk`, what each worker runs) on a 2025-shaped batch, every rule on every row.

Prints the chunk's seconds under the profiler (slower than without) and the functions by
cumulative time, so that the share of address parsing (`parse_street`) is visible.

    python benchmarks/profile_rules.py [--requests 50000] [--taxpayers 100000] [--top 25] [--plain]

`--plain` times the chunk without the profiler instead (what a worker spends on it), in a fresh
process: the normalisers' caches start empty, as in a worker's first chunk, and the garbage
collector is paced as in a worker. It then prints the
floor issue 17 holds the stage to, parsing each distinct street line of the chunk once, two ways:
tagging it (what the address rules read) and tagging and standardising it (what identification
reads as well, for the requests that pass every rule).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from dataclasses import fields
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from taxgate import pipeline
from taxgate.intake import read_manifest
from taxgate.normalize import address
from taxgate.pipeline import judging, staging
from taxgate.policy import load_policies, policy_in_force
from taxgate.processes import BATCH_THRESHOLDS
from taxgate.rules import RowStats, judge_batch
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "profile_rules"


def seeded_world(folder: Path, taxpayers: int, requests: int) -> tuple[Path, Path]:
    """(master, batch manifest) in `folder`, seeded, the batch 2025-shaped: made once, then reused."""
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / "master.parquet"
    if not master.exists():
        generate_master(taxpayers, master, seed=7)
    manifest = folder / "batch" / "manifest.json"
    if not manifest.exists():
        generate_batch(master, folder / "batch", requests, seed=5, mix=Mix.datafile_2025())
    return master, manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=50_000, help="one chunk is at most staging.CHUNK_ROWS"
    )
    parser.add_argument("--taxpayers", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--plain", action="store_true", help="time without the profiler")
    args = parser.parse_args()
    folder = WORK / f"{args.taxpayers}-{args.requests}"
    manifest = read_manifest(seeded_world(folder, args.taxpayers, args.requests)[1])
    as_of = date(2025, 7, 25)
    policy = policy_in_force(load_policies(None), as_of)
    (folder / "work").mkdir(exist_ok=True)
    pipeline.stage(manifest, policy, folder / "work")
    staged = folder / "work" / "staged.parquet"
    rows = min(args.requests, staging.CHUNK_ROWS)
    # The batch figures as a row of the rules pass sees them when nothing recurs (no history).
    stats = {f.name: np.array([getattr(RowStats(), f.name)] * rows) for f in fields(RowStats)}
    task = judging.RuleTask(
        staged,
        0,
        stats,
        policy,
        manifest,
        as_of,
        tuple(judge_batch(manifest, policy, as_of)),
        "statute",
    )
    if args.plain:
        gc.set_threshold(*BATCH_THRESHOLDS)  # as in a worker (processes.Workers)
        started = time.perf_counter()
        judging.judge_chunk(task)
        seconds = time.perf_counter() - started
        print(f"one chunk of {rows:,} rows: {seconds:.2f} s ({seconds / rows * 1e6:.0f} µs a row)")
        # The floors the rules stage is held to, each from empty caches: parsing each distinct
        # street line of the chunk once as the address rules need it (scourgify's pre-cleaning and
        # usaddress's tagging), and as identification needs it too (the tags standardised to
        # Publication 28 by scourgify: `parse_street`).
        lines = set(
            zip(
                *pq.read_table(staged, columns=["street", "unit"])
                .slice(0, rows)
                .to_pydict()
                .values()
            )
        )
        for label, parse in (
            ("tagging", address.street_kind),
            ("tagging and standardising", address.parse_street),
        ):
            address._tag.cache_clear()
            address._token_attributes.cache_clear()
            address.parse_street.cache_clear()
            started = time.perf_counter()
            for street, unit in lines:
                parse(street, unit)
            parsing = time.perf_counter() - started
            print(
                f"parsing its {len(lines):,} distinct street lines once ({label}): {parsing:.2f} s "
                f"({parsing / rows * 1e6:.0f} µs a row); the rules cost {seconds / parsing:.1f} times that"
            )
        return
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    judging.judge_chunk(task)
    profile.disable()
    print(f"one chunk of {rows:,} rows: {time.perf_counter() - started:.1f} s under the profiler")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
