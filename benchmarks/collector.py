"""What the garbage collector costs a batch, at Python's default pace and at the batch's
(`processes.batch_pace`): `taxgate process` of a 2025-shaped batch, once each way, into fresh stores,
with `gc.callbacks` timing every collection in the main process and in every worker.

    python benchmarks/collector.py [--requests 128000] [--taxpayers 250000]

The timing comes from a `sitecustomize` put first on the run's PYTHONPATH (as the tests' dying
hook is): each process writes its totals at exit. At the default pace the hook undoes the batch's
pace (the default thresholds, no freeze), so that the two runs differ in that alone. A worker's
collection at its exit is not counted (it comes after the hook's report); nor is any in a run's
first 0.1 s, before the hook is loaded.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from profile_rules import seeded_world  # this folder's, on the path as the script's own

WORK = Path(__file__).parent / "_work" / "collector"

HOOK = """
import atexit, gc, os, time

_log = os.environ["TAXGATE_BENCH_GC_LOG"]
_seconds, _count, _started = [0.0], [0], [0.0]


def _timed(phase, info):
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _seconds[0] += time.perf_counter() - _started[0]
        _count[0] += 1


gc.callbacks.append(_timed)


@atexit.register
def _report():
    with open(os.path.join(_log, str(os.getpid())), "w") as fh:
        fh.write(f"{_seconds[0]} {_count[0]}")


if os.environ.get("TAXGATE_BENCH_GC_DEFAULT"):
    import taxgate.processes as _processes

    class _Unpaced:  # the module's gc, but a batch_pace that changes nothing
        def __getattr__(self, name):
            return getattr(gc, name)

        freeze = unfreeze = staticmethod(lambda: None)

    _processes.BATCH_THRESHOLDS = gc.get_threshold()
    _processes.gc = _Unpaced()
"""


def run(
    manifest: Path, master: Path, folder: Path, default: bool
) -> tuple[float, float, float, int, int]:
    """(wall s, CPU s, collection s, collections, processes) of one `taxgate process`."""
    hook, log = folder / "hook", folder / "gc"
    for made in (hook, log):
        made.mkdir(parents=True)
    (hook / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p),
        "TAXGATE_BENCH_GC_LOG": str(log),
        "TAXGATE_LEDGER_KEY": str(folder / "ledger.key"),
        "TAXGATE_DATABASE_URL": f"sqlite:///{folder / 'taxgate.db'}",
    }
    if default:
        env["TAXGATE_BENCH_GC_DEFAULT"] = "1"
    command = [sys.executable, "-m", "taxgate", "process", str(manifest), "--master", str(master)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [*command, "--out", str(folder / "out")], env=env, check=True, capture_output=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    reports = [f.read_text().split() for f in log.iterdir()]
    return (
        wall,
        cpu,
        sum(float(s) for s, _ in reports),
        sum(int(n) for _, n in reports),
        len(reports),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=128_000)
    parser.add_argument("--taxpayers", type=int, default=250_000)
    args = parser.parse_args()
    master, manifest = seeded_world(
        WORK / f"{args.taxpayers}-{args.requests}", args.taxpayers, args.requests
    )
    print(
        f"{args.requests:,} requests (2025 mix) against {args.taxpayers:,} taxpayers, warm master"
    )
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        # a first run prepares the master, so that both measured runs find it cached
        subprocess.run(
            [sys.executable, "-m", "taxgate", "process", str(manifest), "--master", str(master)]
            + ["--out", str(Path(scratch) / "out")],
            env={
                **os.environ,
                "TAXGATE_LEDGER_KEY": str(Path(scratch) / "ledger.key"),
                "TAXGATE_DATABASE_URL": f"sqlite:///{Path(scratch) / 'taxgate.db'}",
            },
            check=True,
            capture_output=True,
        )
        for name, default in (("Python's default pace", True), ("the batch's pace", False)):
            folder = Path(scratch) / ("default" if default else "paced")
            wall, cpu, gc_seconds, collections, processes = run(manifest, master, folder, default)
            print(
                f"{name}: wall {wall:.1f} s, CPU {cpu:.1f} s; collecting {gc_seconds:.1f} s "
                f"in {collections:,} collections over {processes} processes"
            )


if __name__ == "__main__":
    main()
