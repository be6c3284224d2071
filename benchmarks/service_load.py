"""The service under load, on loopback: single-request decision latency, and batch-upload
throughput with concurrent requesters.

Starts `taxgate serve` (its own SQLite store unless --database-url, one worker unless --workers)
on the demo-sized synthetic master, then

1. latency: --single batches of one request each, sent one after another; for each, the time from
   the POST to the moment the API reports it decided (polled every 10 ms): p50 and p99;
2. throughput: --clients requesters at once, each sending --uploads batches of --rows requests;
   uploads accepted per second (and the POST's p50/p99), and requests decided per second from
   the first POST to the last batch done.

    python benchmarks/service_load.py [--single 40] [--clients 4] [--uploads 5] [--rows 2000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from taxgate import accounts
from taxgate.store import open_store
from taxgate.synth import generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "service"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait_done(client: httpx.Client, url: str, headers: dict, every: float = 0.01) -> dict:
    while True:
        view = client.get(url, headers=headers).json()
        if view["status"] in ("done", "failed"):
            if view["status"] == "failed":
                raise SystemExit(f"a batch failed: {view['error']}")
            return view
        time.sleep(every)


def one_request_batches(source: Path, n: int) -> list[tuple[bytes, bytes]]:
    """n batches of one request each (distinct refs), cut from a generated batch (its well-formed
    lines only: the generator also writes broken ones)."""
    manifest = json.loads(source.read_text())
    lines = (source.parent / manifest["requests"]).read_bytes().splitlines(keepends=True)
    header, body = lines[0], []
    for line in lines[1:]:
        try:
            if len(next(csv.reader([line.decode()]))) == header.count(b",") + 1:
                body.append(line)
        except (UnicodeDecodeError, StopIteration, csv.Error):
            continue
    return [(json.dumps({**manifest, "batch_ref": f"single-{i}", "requests": "requests.csv"}).encode(),
             header + body[i % len(body)]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--taxpayers", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    master = WORK / "master.parquet"
    generate_master(args.taxpayers, master, seed=7)
    url = args.database_url or f"sqlite:///{WORK / 'taxgate.db'}"
    store = open_store(url)
    accounts.add_user(store, "requester", "requester", "DHS-ICE")
    headers = {"Authorization": f"Bearer {accounts.issue_token(store, 'requester')}"}
    store.close()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TAXGATE_LEDGER_KEY": str(WORK / "ledger.key")}
    server = subprocess.Popen(
        [sys.executable, "-m", "taxgate", "serve", "--port", str(port), "--master", str(master), "--data-dir",
         str(WORK / "data"), "--database-url", url, "--workers", str(args.workers), "--release-every", "0",
         "--uploads-per-minute", "100000"],
        env=env, stdout=open(WORK / "server.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = httpx.Client(timeout=120)
        for _ in range(300):
            try:
                if client.get(base + "/login").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        source = generate_batch(master, WORK / "source", max(args.rows, args.single), seed=8)

        # 1. single-request decision latency (a warm-up first: the worker's first batch loads its imports)
        singles = one_request_batches(source, args.single + 1)
        latencies = []
        for i, (manifest, rows) in enumerate(singles):
            started = time.perf_counter()
            sent = client.post(base + "/api/batches", headers=headers,
                               files={"manifest": ("manifest.json", manifest), "rows": ("requests.csv", rows)})
            assert sent.status_code == 202, sent.text
            wait_done(client, f"{base}/api/batches/{sent.json()['id']}", headers)
            if i:
                latencies.append(time.perf_counter() - started)
        print(f"single-request decision latency over {len(latencies)} batches of one request: "
              f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms")

        # 2. concurrent uploads of bigger batches
        manifest = json.loads(source.read_text())
        rows = (source.parent / manifest["requests"]).read_bytes()
        lines = rows.splitlines(keepends=True)
        body = b"".join(lines[: args.rows + 1])
        posts: list[float] = []

        def requester(n: int) -> list[int]:
            ids = []
            with httpx.Client(timeout=120) as own:
                for k in range(args.uploads):
                    raw = json.dumps({**manifest, "batch_ref": f"load-{n}-{k}", "requests": "requests.csv"}).encode()
                    started = time.perf_counter()
                    sent = own.post(base + "/api/batches", headers=headers,
                                    files={"manifest": ("manifest.json", raw), "rows": ("requests.csv", body)})
                    posts.append(time.perf_counter() - started)
                    assert sent.status_code == 202, sent.text
                    ids.append(sent.json()["id"])
            return ids

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            ids = [i for batch in pool.map(requester, range(args.clients)) for i in batch]
        accepted = time.perf_counter() - started
        decided = sum(wait_done(client, f"{base}/api/batches/{i}", headers, every=0.2)["decided"] for i in ids)
        finished = time.perf_counter() - started
        print(f"concurrent uploads: {args.clients} requesters x {args.uploads} batches of {args.rows:,} requests "
              f"({len(body) / 1e6:.2f} MB each): {len(ids) / accepted:.1f} uploads accepted/s, "
              f"POST p50 {pct(posts, 50) * 1000:.0f} ms, p99 {pct(posts, 99) * 1000:.0f} ms")
        print(f"batch throughput under that load: {decided:,} requests decided in {finished:.1f} s = "
              f"{decided / finished:,.0f} requests/s ({args.workers} worker(s), {os.cpu_count()} cores)")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    main()
