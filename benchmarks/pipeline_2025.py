"""The 2025 datafile end to end: every figure of issue 17's table from one run.

A batch shaped like the 2025 datafile (`Mix.datafile_2025()`: the defects the courts found, at
their shares) against a ten-million-row master, through the command line a tax agency would run:

1. cold: `taxgate process` with no prepared master and a fresh SQLite store;
2. warm: `taxgate process` again, the prepared master cached, into another fresh store (so the
   recording is counted, as in a real second batch);
3. replay: `taxgate replay` of the same batch as practised in 2025, into the warm store;
4. audit: `taxgate audit` of that replay under the statute;
5. verify: `taxgate ledger verify` of the warm store, every entry.

Each step runs as its own process. Its wall time, the stages the pipeline reports in
summary.json (the main thread's, which add up to its wall time, then the recording thread's busy
time, which overlaps them), and its peak memory are printed: the peak is the resident memory of the step's
process and its workers together, sampled from /proc every 0.2 s (so generating the batch, which
runs before in a process of its own, is never counted). `--requests` is the number of rows
written.

Each step also prints its CPU seconds (user and system time of its process and the workers it
waited for): against twice the wall time, what is left of this machine's two cores.

    python benchmarks/pipeline_2025.py [--rows 10000000] [--requests 1280000] [--steps cold,warm,...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

WORK = Path(__file__).parent / "_work" / "pipeline_2025"
MASTERS = (
    Path(__file__).parent / "_work" / "scale"
)  # shared with identify_scale.py: the same seeded master
ROWS_PER_TAXPAYER = 4.14
STEPS = ("cold", "warm", "replay", "audit", "verify")
# The main thread's stretches, which add up to its wall time ("ledger": waiting for the recording
# thread), then the recording thread's own busy time, which overlaps them.
STAGES = (
    "intake",
    "receipt",
    "history",
    "rules",
    "master",
    "identify",
    "decide",
    "ledger",
    "recording",
)


def _tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run(name: str, args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Run one step; (seconds, peak GiB of its process tree, CPU seconds of its process tree: user
    and system time of the step's process and every worker it waited for). Its output goes to
    WORK/<name>.log."""
    log = open(WORK / f"{name}.log", "w", encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(child.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = child.wait()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done.set()
    sampler.join()
    log.close()
    if code != 0:
        sys.exit(f"{name} failed (exit {code}): see {WORK / (name + '.log')}")
    return seconds, peak / 1024**3, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=10_000_000, help="master rows (about 4.14 per taxpayer)"
    )
    parser.add_argument("--requests", type=int, default=1_280_000, help="rows the batch file holds")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help="the steps to run, of " + ",".join(STEPS) + " (replay, audit and verify use the "
        "warm run's store; warm without cold uses the prepared master as it is)",
    )
    args = parser.parse_args()
    steps = args.steps.split(",")
    if unknown := set(steps) - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    WORK.mkdir(parents=True, exist_ok=True)
    MASTERS.mkdir(parents=True, exist_ok=True)
    taxgate = [sys.executable, "-m", "taxgate"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TAXGATE_DATABASE_URL", "TAXGATE_LEDGER_KEY")
    }

    master = MASTERS / f"master-{args.rows}.parquet"
    if not master.exists():
        seconds, peak, _ = run(
            "master",
            [
                *taxgate,
                "synth",
                "master",
                "--taxpayers",
                str(int(args.rows / ROWS_PER_TAXPAYER)),
                "--out",
                str(master),
                "--seed",
                "7",
            ],
            env,
        )
        print(f"generated the master: {seconds:.0f} s, {peak:.2f} GiB (not counted below)")
    batch = WORK / f"batch-{args.requests}-{args.seed}"
    if not (batch / "manifest.json").exists():
        code = (
            f"from pathlib import Path; from taxgate.synth import Mix, generate_batch; "
            f"generate_batch(Path({str(master)!r}), Path({str(batch)!r}), {args.requests}, seed={args.seed}, "
            f"mix=Mix.datafile_2025())"
        )
        seconds, peak, _ = run("batch", [sys.executable, "-c", code], env)
        print(f"generated the batch: {seconds:.0f} s, {peak:.2f} GiB (not counted below)")
    manifest = batch / "manifest.json"
    with open(batch / "requests.csv", "rb") as fh:
        written = sum(1 for _ in fh) - 1
    print(f"master: {master.name}; batch: {written:,} rows written (--requests {args.requests:,})")

    rows = []
    if "cold" in steps:
        for cache in master.parent.glob(master.stem + ".taxgate-prepared.*"):
            shutil.rmtree(
                cache
            ) if cache.is_dir() else cache.unlink()  # cold: the master prepared from scratch
    for step in [s for s in ("cold", "warm") if s in steps]:
        # a fresh store, and a fresh signing key for it (a key remembers the last checkpoint it signed)
        for old in WORK.glob(f"{step}.*"):
            old.unlink()
        shutil.rmtree(WORK / step, ignore_errors=True)
        url = f"sqlite:///{WORK / (step + '.db')}"
        seconds, peak, cpu = run(
            step,
            [
                *taxgate,
                "process",
                str(manifest),
                "--master",
                str(master),
                "--out",
                str(WORK / step),
                "--database-url",
                url,
            ],
            {**env, "TAXGATE_LEDGER_KEY": str(WORK / f"{step}.key")},
        )
        stages = json.loads((WORK / step / "summary.json").read_text())["seconds"]
        rows.append((step, seconds, peak, cpu, stages))
    url = f"sqlite:///{WORK / 'warm.db'}"
    shutil.rmtree(WORK / "replay", ignore_errors=True)
    # The replay is a batch of its own in the store (as `taxgate demo` makes it): the same rows, its own reference.
    raw = json.loads(manifest.read_text(encoding="utf-8"))
    replayed = batch / "manifest-as-practised-2025.json"
    replayed.write_text(
        json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-as-practised-2025"}, indent=2) + "\n",
        encoding="utf-8",
    )
    for step, command in (
        (
            "replay",
            ["replay", str(replayed), "--master", str(master), "--out", str(WORK / "replay")],
        ),
        ("audit", ["audit", str(replayed), "--master", str(master), "--out", str(WORK / "audit")]),
        ("verify", ["ledger", "verify", "--key", str(WORK / "warm.pub")]),
    ):
        if step not in steps:
            continue
        seconds, peak, cpu = run(
            step,
            [*taxgate, *command, "--database-url", url],
            {**env, "TAXGATE_LEDGER_KEY": str(WORK / "warm.key")},
        )
        rows.append((step, seconds, peak, cpu, {}))

    print(f"{'step':8} {'wall s':>7} {'CPU s':>7} {'peak GiB':>8}   stages (s)")
    for step, seconds, peak, cpu, stages in rows:
        parts = ", ".join(f"{s} {stages[s]:.0f}" for s in STAGES if s in stages)
        print(f"{step:8} {seconds:7.0f} {cpu:7.0f} {peak:8.2f}   {parts}")
    if "verify" in steps:
        print("ledger verify: " + " ".join((WORK / "verify.log").read_text().split()))


if __name__ == "__main__":
    main()
