"""The service under load, on loopback: single-request decision latency, and batch-upload
throughput with concurrent requesters.

Starts `taxgate serve` (its own SQLite store unless --database-url, one worker unless --workers)
on the demo-sized synthetic master, then

1. latency: --single batches of one request each, sent one after another; for each, the time from
   the POST to the moment the API reports it decided (polled every 10 ms): p50 and p99;
2. throughput: --clients requesters at once, each sending --uploads batches of --rows requests;
   uploads accepted per second (and the POST's p50/p99), and requests decided per second from
   the first POST to the last batch done;
3. a flood: one agency's requester sends --flood batches of about --flood-mb MiB each as fast as it
   can, and meanwhile a requester of another agency sends one 300-row batch: that batch's time
   from POST to done, and the p50/p99 latency of the API (a batch's status, polled every 100 ms by
   a third client) during the flood. Queues are fair across agencies: the 300 rows do not wait
   for the flood.

    python benchmarks/service_load.py [--single 40] [--clients 4] [--uploads 5] [--rows 2000]
                                      [--flood 20] [--flood-mb 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
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
    return [
        (
            json.dumps(
                {**manifest, "batch_ref": f"single-{i}", "requests": "requests.csv"}
            ).encode(),
            header + body[i % len(body)],
        )
        for i in range(n)
    ]


def second_agency_policy(path: Path) -> Path:
    """The demo policy with a second agency (DHS-CBP) under the same agreement terms, so that two
    agencies' batches are decided alike."""
    from taxgate.policy import POLICY_DIR

    text = (POLICY_DIR / "demo-2025.1.toml").read_text(encoding="utf-8")
    agency = text[text.index("[[agencies]]") : text.index("[[agreements]]")]
    agreement = text[text.index("[[agreements]]") : text.index("# The statute catalog")]
    text = text.replace(
        agreement, agreement + agreement.replace('agency = "DHS-ICE"', 'agency = "DHS-CBP"')
    )
    text = text.replace(agency, agency + agency.replace('code = "DHS-ICE"', 'code = "DHS-CBP"'))
    path.write_text(
        text.replace('version = "demo-2025.1"', 'version = "bench-2025.1"'), encoding="utf-8"
    )
    return path


def flood(client, base: str, flooder: dict, other: dict, watcher: dict, master: Path, args) -> None:
    """One agency floods the queue; another sends 300 rows; how long do the 300 rows wait?"""
    import threading

    sample = generate_batch(master, WORK / "sample", 2_000, seed=9)
    per_row = (sample.parent / "requests.csv").stat().st_size / 2_000
    rows_each = int(args.flood_mb * (1 << 20) / per_row)
    source = generate_batch(master, WORK / "flood", rows_each, seed=9)
    manifest = json.loads(source.read_text())
    body = (source.parent / manifest["requests"]).read_bytes()
    small = generate_batch(master, WORK / "small", 300, seed=10)
    small_manifest = {**json.loads(small.read_text()), "agency": "DHS-CBP", "batch_ref": "cbp-300"}
    small_rows = (small.parent / small_manifest["requests"]).read_bytes()

    sent_flood: list[int] = []
    latencies: list[float] = []
    stop = threading.Event()

    def flooding() -> None:
        with httpx.Client(timeout=120) as own:
            for k in range(args.flood):
                raw = json.dumps(
                    {**manifest, "batch_ref": f"flood-{k}", "requests": "requests.csv"}
                ).encode()
                answer = own.post(
                    base + "/api/batches",
                    headers=flooder,
                    files={"manifest": ("manifest.json", raw), "rows": ("requests.csv", body)},
                )
                if answer.status_code == 202:
                    sent_flood.append(answer.json()["id"])

    def watching() -> None:
        with httpx.Client(timeout=120) as own:
            while not stop.is_set():
                started = time.perf_counter()
                own.get(base + "/api/batches?limit=20", headers=watcher)
                latencies.append(time.perf_counter() - started)
                stop.wait(0.1)

    floods, watch = threading.Thread(target=flooding), threading.Thread(target=watching)
    floods.start()
    watch.start()
    while len(sent_flood) < min(3, args.flood) and floods.is_alive():  # the flood is under way
        time.sleep(0.05)
    started = time.perf_counter()
    sent = client.post(
        base + "/api/batches",
        headers=other,
        files={
            "manifest": ("manifest.json", json.dumps(small_manifest).encode()),
            "rows": ("requests.csv", small_rows),
        },
    )
    assert sent.status_code == 202, sent.text
    view = wait_done(client, f"{base}/api/batches/{sent.json()['id']}", other, every=0.05)
    waited = time.perf_counter() - started
    floods.join()
    stop.set()
    watch.join()
    print(
        f"flood: one agency sent {len(sent_flood)} batches of {rows_each:,} requests ({len(body) / (1 << 20):.1f} MiB "
        f"each); another agency's {view['rows']}-row batch was done {waited:.1f} s after its POST"
    )
    print(
        f"API latency during the flood ({len(latencies)} status reads, every 100 ms): "
        f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--taxpayers", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--flood", type=int, default=20)
    parser.add_argument("--flood-mb", type=float, default=5.0)
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    master = WORK / "master.parquet"
    generate_master(args.taxpayers, master, seed=7)
    url = args.database_url or f"sqlite:///{WORK / 'taxgate.db'}"
    os.environ["TAXGATE_LEDGER_KEY"] = str(
        WORK / "ledger.key"
    )  # adding users signs a checkpoint: the server's key
    store = open_store(url)
    accounts.add_user(store, "requester", "requester", "DHS-ICE")
    headers = {"Authorization": f"Bearer {accounts.issue_token(store, 'requester')}"}
    accounts.add_user(store, "other", "requester", "DHS-CBP")
    other = {"Authorization": f"Bearer {accounts.issue_token(store, 'other')}"}
    accounts.add_user(store, "watcher", "auditor")
    watcher = {"Authorization": f"Bearer {accounts.issue_token(store, 'watcher')}"}
    store.close()
    policy = second_agency_policy(WORK / "policy.toml")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TAXGATE_LEDGER_KEY": str(WORK / "ledger.key")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taxgate",
            "serve",
            "--port",
            str(port),
            "--master",
            str(master),
            "--data-dir",
            str(WORK / "data"),
            "--database-url",
            url,
            "--workers",
            str(args.workers),
            "--release-every",
            "0",
            "--uploads-per-minute",
            "100000",
            "--policy",
            str(policy),
        ],
        env=env,
        stdout=open(WORK / "server.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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
            sent = client.post(
                base + "/api/batches",
                headers=headers,
                files={"manifest": ("manifest.json", manifest), "rows": ("requests.csv", rows)},
            )
            assert sent.status_code == 202, sent.text
            wait_done(client, f"{base}/api/batches/{sent.json()['id']}", headers)
            if i:
                latencies.append(time.perf_counter() - started)
        print(
            f"single-request decision latency over {len(latencies)} batches of one request: "
            f"p50 {pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms"
        )

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
                    raw = json.dumps(
                        {**manifest, "batch_ref": f"load-{n}-{k}", "requests": "requests.csv"}
                    ).encode()
                    started = time.perf_counter()
                    sent = own.post(
                        base + "/api/batches",
                        headers=headers,
                        files={"manifest": ("manifest.json", raw), "rows": ("requests.csv", body)},
                    )
                    posts.append(time.perf_counter() - started)
                    assert sent.status_code == 202, sent.text
                    ids.append(sent.json()["id"])
            return ids

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            ids = [i for batch in pool.map(requester, range(args.clients)) for i in batch]
        accepted = time.perf_counter() - started
        decided = sum(
            wait_done(client, f"{base}/api/batches/{i}", headers, every=0.2)["decided"] for i in ids
        )
        finished = time.perf_counter() - started
        print(
            f"concurrent uploads: {args.clients} requesters x {args.uploads} batches of {args.rows:,} requests "
            f"({len(body) / 1e6:.2f} MB each): {len(ids) / accepted:.1f} uploads accepted/s, "
            f"POST p50 {pct(posts, 50) * 1000:.0f} ms, p99 {pct(posts, 99) * 1000:.0f} ms"
        )
        print(
            f"batch throughput under that load: {decided:,} requests decided in {finished:.1f} s = "
            f"{decided / finished:,.0f} requests/s ({args.workers} worker(s), {os.cpu_count()} cores)"
        )

        if args.flood:
            flood(client, base, headers, other, watcher, master, args)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    main()
