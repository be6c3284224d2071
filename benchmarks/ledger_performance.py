"""Ledger performance on SQLite: batched appends, a full verify, inclusion proofs at ten million.

Appends decision-shaped entries (canonical JSON, about 250 bytes) in transactions of --batch
entries, signs a checkpoint, runs `Ledger.verify` over everything, then times inclusion proofs for
random entries against the latest size (each proof is checked, as a verifier would).

    python benchmarks/ledger_performance.py [--entries 10000000] [--batch 50000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from taxgate.ledger import Ledger, merkle
from taxgate.ledger.checkpoint import Signer, verify as verify_note
from taxgate.store import open_store

WORK = Path(__file__).parent / "_work" / "ledger"


def entries(start: int, n: int) -> list[dict]:
    return [
        {"kind": "decision", "batch": 1 + i // 1_280_000, "row": i, "request_id": f"DHS-ICE-{i:09d}",
         "outcome": "DISCLOSED" if i % 2 else "NOT_DISCLOSED", "reasons": ["ID_POSITIVE"] if i % 2 else ["ID_NO_CANDIDATE"],
         "refused_items": [], "matched_tin": f"{900000000 + i % 99999999:09d}", "weight": f"{20 + i % 97 / 10:.3f}",
         "runner_up_tin": "", "runner_up_weight": None}
        for i in range(start, start + n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--proofs", type=int, default=1_000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "ledger.db"
    for old in WORK.glob("ledger.db*"):
        old.unlink()
    store = open_store(f"sqlite:///{db}")
    ledger = Ledger(store)
    signer = Signer.generate(ledger.origin)

    appending = 0.0
    for start in range(0, args.entries, args.batch):
        chunk = entries(start, min(args.batch, args.entries - start))
        began = time.perf_counter()
        with store.session.begin() as session:
            ledger.append(session, chunk)
        appending += time.perf_counter() - began
    with store.session.begin() as session:
        note = ledger.checkpoint(session, signer)
    print(f"appended {args.entries:,} entries in transactions of {args.batch:,}: {appending:.1f} s = "
          f"{args.entries / appending:,.0f} entries/s (canonical JSON, leaf hashes, tiles, SQLite commit)")
    print(f"database: {db.stat().st_size / 2**30:.2f} GiB")

    began = time.perf_counter()
    problems = list(ledger.verify(signer.verifier_key()))
    print(f"full verify of {args.entries:,} entries: {time.perf_counter() - began:.1f} s; problems: {len(problems)}")

    checkpoint = verify_note(note, signer.verifier_key())
    rng = random.Random(7)
    times = []
    with store.session() as session:
        for index in (rng.randrange(checkpoint.size) for _ in range(args.proofs)):
            began = time.perf_counter()
            proof = ledger.prove(session, index, checkpoint.size)
            times.append(time.perf_counter() - began)
            merkle.verify_inclusion(index, checkpoint.size, merkle.leaf_hash(ledger.entry(session, index)), proof,
                                    checkpoint.root)
    times.sort()
    print(f"inclusion proof at {checkpoint.size:,} entries: median {statistics.median(times) * 1e3:.2f} ms, "
          f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms ({args.proofs} proofs)")
    store.close()


if __name__ == "__main__":
    main()
