"""Where Spark overtakes DuckDB: the same batch identified against a growing master on each engine.

For each master size, one batch of requests (no defects written in, so nearly every request reaches
identification) goes through `taxgate process` twice per engine: cold (the master prepared on that
engine: DuckDB's worker processes, or Spark's executors) and warm (the prepared master cached).
Printed per size and engine: the master preparation and identification seconds the pipeline
reports in summary.json (identification: scoring and the decision, on that engine), the whole
run's wall time, and whether both engines gave the same decisions. Spark runs in local mode on this
machine's cores unless TAXGATE_SPARK_MASTER names a cluster; the session is started before the
clock (the JVM's start is printed apart).

    python benchmarks/spark_crossover.py [--sizes 250000,1000000,4000000] [--requests 64000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from taxgate.pipeline import process
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "crossover"
os.environ.setdefault("TAXGATE_DATABASE_URL", f"sqlite:///{WORK / 'taxgate.db'}")
os.environ.setdefault("TAXGATE_LEDGER_KEY", str(WORK / "taxgate-ledger.key"))
ROWS_PER_TAXPAYER = 4.14
ENGINES = ("duckdb", "spark")


def run(engine: str, manifest: Path, master: Path, out: Path) -> dict:
    os.environ["TAXGATE_MATCH_BACKEND"] = engine
    began = time.perf_counter()
    process(manifest, master, out)
    wall = time.perf_counter() - began
    seconds = json.loads((out / "summary.json").read_text())["seconds"]
    return {
        "wall": wall,
        "master": seconds.get("master", 0.0),
        "identify": seconds.get("identify", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default="250000,1000000,4000000", help="master rows, comma-separated"
    )
    parser.add_argument("--requests", type=int, default=64_000)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    from taxgate.identify.spark import session

    began = time.perf_counter()
    session()
    print(
        f"Spark session ({os.environ.get('TAXGATE_SPARK_MASTER', 'local[2]')}) started in "
        f"{time.perf_counter() - began:.1f} s (not counted below)"
    )
    print(
        f"{'master rows':>12} {'engine':7} {'prep cold':>9} {'id cold':>8} {'wall cold':>9} {'id warm':>8} "
        f"{'wall warm':>9}  same decisions"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        here = WORK / str(size)
        rows, _ = generate_master(int(size / ROWS_PER_TAXPAYER), here / "master.parquet", seed=3)
        manifest = generate_batch(
            here / "master.parquet", here / "batch", args.requests, seed=5, mix=Mix.clean()
        )
        figures, decided = {}, {}
        for engine in ENGINES:  # each engine prepares its own copy, cold
            (here / engine).mkdir()
            master = here / engine / "master.parquet"
            shutil.copy(here / "master.parquet", master)
            cold = run(engine, manifest, master, here / engine / "cold")
            warm = run(engine, manifest, master, here / engine / "warm")
            figures[engine] = (cold, warm)
            decided[engine] = (here / engine / "warm" / "auditors" / "decisions.csv").read_bytes()
        same = "yes" if decided["duckdb"] == decided["spark"] else "NO"
        for engine in ENGINES:
            cold, warm = figures[engine]
            print(
                f"{rows:>12,} {engine:7} {cold['master']:>9.1f} {cold['identify']:>8.1f} {cold['wall']:>9.1f} "
                f"{warm['identify']:>8.1f} {warm['wall']:>9.1f}  {same}",
                flush=True,
            )
        shutil.rmtree(here)


if __name__ == "__main__":
    main()
