"""Ledger performance on SQLite: recording, a full verify with every row checked, inclusion proofs.

Records batches shaped like the 2025 datafile straight through the store's bulk path: per batch a
`batch_received` entry, one decision entry and row per request (5% with evidence, as identified
requests carry), a disclosure entry and row for one request in 27 (the 2025 file's share), and a
`batch_completed` entry; every row bound to its entry as taxgate records them. Then it signs a
checkpoint, runs the full `taxgate ledger verify` walk (`verification.verify_store`: every leaf
hash, tile and checkpoint recomputed, every row rebuilt into its entry and compared byte for
byte, both ways), and times inclusion proofs for random entries (each checked, as a verifier would).

    python benchmarks/ledger_performance.py [--entries 10000000] [--batch 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from taxgate.ledger import Ledger, merkle, sign_checkpoint
from taxgate.ledger.checkpoint import verify_note
from taxgate.release.entries import (
    batch_completed_entry,
    batch_received_entry,
    decision_entry,
    disclosure_entry,
    item_value,
)
from taxgate.store import open_store
from taxgate.store.models import Batch, DecisionRecord, Disclosure
from taxgate.verification import verify_store

WORK = Path(__file__).parent / "_work" / "ledger"
PER_BATCH = 1_280_000
VERSIONS = {
    "policy_version": "demo-2025.1",
    "rule_set_version": "statute-1",
    "model_version": "taxgate-id-1",
}
EVIDENCE = json.dumps(
    {
        "decision": "ID_POSITIVE",
        "fields": {
            f: {"level": 3, "weight": "4.250"}
            for f in ("first_name", "last_name", "dob", "street", "zip")
        },
    }
)


def decision_rows(batch_id: int, first_row: int, n: int) -> list[dict]:
    rows = []
    for i in range(first_row, first_row + n):
        disclosed = i % 27 == 0
        rows.append(
            {
                "batch_id": batch_id,
                "row_number": i,
                "request_id": f"DHS-ICE-{i:09d}",
                "requested_tin": "",
                "official": f"Officer {i % 400}",
                "case_number": f"A{i:09d}",
                "outcome": "DISCLOSED" if disclosed else "REFUSED",
                "reasons": "ID_POSITIVE"
                if disclosed
                else "ADDRESS_PLACEHOLDER;RELEVANCE_NOT_SPECIFIC",
                "refused_items": "",
                "matched_tin": f"{900000000 + i % 99999999:09d}" if disclosed else "",
                "match_weight": 20 + i % 97 / 10 if disclosed else None,
                "runner_up_tin": "",
                "runner_up_weight": None,
                "evidence": EVIDENCE if i % 20 == 0 or disclosed else None,
            }
        )
    return rows


def record(store, ledger: Ledger, total: int, chunk: int) -> None:
    """`total` entries of batches recorded as `release.batch` records them, in chunks of `chunk`."""
    done, batch_id = 0, 0
    now = datetime.now(UTC)
    while done < total:
        rows_in_batch = min(PER_BATCH, max(1, int((total - done) / 1.04) - 2))
        with store.session.begin() as session:
            batch = Batch(
                agency="DHS-ICE",
                batch_ref=f"2025-{batch_id}",
                manifest_sha256="0" * 64,
                rows_sha256=f"{batch_id:064d}",
                submitted_at="2025-08-07T00:00:00Z",
                signed_by="Jordan Avery",
                received_at=now,
                as_of="2025-08-07",
                rows=rows_in_batch,
                status="processing",
                committed_rows=0,
                **VERSIONS,
            )
            (batch.received_index,) = ledger.append(
                session,
                [
                    batch_received_entry(
                        {
                            c: getattr(batch, c)
                            for c in (
                                "received_at",
                                "agency",
                                "batch_ref",
                                "submitted_at",
                                "signed_by",
                                "manifest_sha256",
                                "rows_sha256",
                                "rows",
                                "as_of",
                                *VERSIONS,
                            )
                        }
                    )
                ],
            )
            session.add(batch)
            session.flush()
            batch_id, outcomes = batch.id, {}
        done += 1
        for first in range(1, rows_in_batch + 1, chunk):
            rows = decision_rows(batch_id, first, min(chunk, rows_in_batch - first + 1))
            with store.session.begin() as session:
                span = ledger.append(session, [decision_entry(r, VERSIONS) for r in rows])
                for row, index in zip(rows, span):
                    row["ledger_index"] = index
                    outcomes[row["outcome"]] = outcomes.get(row["outcome"], 0) + 1
                session.execute(insert(DecisionRecord), rows)
                released = [r for r in rows if r["outcome"] == "DISCLOSED"]
                ids = dict(
                    session.execute(
                        select(DecisionRecord.row_number, DecisionRecord.id).where(
                            DecisionRecord.batch_id == batch_id,
                            DecisionRecord.row_number.between(first, first + len(rows)),
                        )
                    ).all()
                )
                value = item_value(
                    {
                        "street": "12 MAIN ST",
                        "unit": "",
                        "city": "SPRINGFIELD",
                        "state": "IL",
                        "zip": "62701",
                        "tax_year": "2024",
                    }
                )
                disclosures = [
                    {
                        "batch_id": batch_id,
                        "row_number": r["row_number"],
                        "request_id": r["request_id"],
                        "tin": r["matched_tin"],
                        "item": "last_known_address",
                        "value": value,
                        "at": now,
                    }
                    for r in released
                ]
                span = ledger.append(session, [disclosure_entry(d) for d in disclosures])
                if disclosures:
                    session.execute(
                        insert(Disclosure),
                        [
                            {
                                "decision_id": ids[d["row_number"]],
                                "tin": d["tin"],
                                "item": d["item"],
                                "value": value,
                                "disclosed_at": now,
                                "ledger_index": index,
                            }
                            for d, index in zip(disclosures, span)
                        ],
                    )
            done += len(rows) + len(released)
        with store.session.begin() as session:
            batch = session.get(Batch, batch_id)
            (batch.completed_index,) = ledger.append(
                session, [batch_completed_entry(batch_id, rows_in_batch, outcomes)]
            )
            batch.status, batch.committed_rows = "done", rows_in_batch
        done += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--proofs", type=int, default=1_000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "ledger.db"
    for old in [
        *WORK.glob("ledger.db*"),
        *WORK.glob("ledger.key*"),
        *WORK.glob("ledger.pub"),
        *WORK.glob("ledger.l*"),
    ]:
        old.unlink()
    os.environ["TAXGATE_LEDGER_KEY"] = str(
        WORK / "ledger.key"
    )  # the benchmark's own key, never the user's
    store = open_store(f"sqlite:///{db}")
    ledger = Ledger(store)

    began = time.perf_counter()
    record(store, ledger, args.entries, args.batch)
    recording = time.perf_counter() - began
    note = sign_checkpoint(store)
    with store.session() as session:
        size = ledger.size(session)
    print(
        f"recorded {size:,} entries with their rows (decisions, disclosures, batches) in transactions of "
        f"{args.batch:,}: {recording:.1f} s = {size / recording:,.0f} entries/s"
    )
    print(f"database: {db.stat().st_size / 2**30:.2f} GiB")

    checkpoint = verify_note(note, Path(WORK / "ledger.pub").read_text().strip())
    began = time.perf_counter()
    found = list(verify_store(store, Path(WORK / "ledger.pub").read_text().strip()))
    print(
        f"full verify of {size:,} entries and every row bound to them: {time.perf_counter() - began:.1f} s; "
        f"findings: {len(found)}"
    )
    for finding in found[:5]:
        print("  ", finding.message)

    rng = random.Random(7)
    times = []
    with store.session() as session:
        for index in (rng.randrange(checkpoint.size) for _ in range(args.proofs)):
            began = time.perf_counter()
            proof = ledger.prove(session, index, checkpoint.size)
            times.append(time.perf_counter() - began)
            merkle.verify_inclusion(
                index,
                checkpoint.size,
                merkle.leaf_hash(ledger.entry(session, index)),
                proof,
                checkpoint.root,
            )
    times.sort()
    print(
        f"inclusion proof at {checkpoint.size:,} entries: median {statistics.median(times) * 1e3:.2f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms ({args.proofs} proofs)"
    )
    store.close()


if __name__ == "__main__":
    main()
