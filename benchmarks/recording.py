"""Recording against the store's bulk speed (issue 17): a batch's decisions recorded as the pipeline
records them, beside a bare bulk insert of the same rows into the same tables.

The decisions are those of a batch already processed: by default the statute's batch in the store
that `benchmarks/pipeline_2025.py` leaves (`_work/pipeline_2025/warm.db`, the 2025-shaped batch),
each with its ledger entry made beforehand, as pass 3's workers make it. Into a fresh store each:

1. recording: `BatchRecorder.record`, a chunk of `RECORD_ROWS` at a time, each in one transaction
   (the decisions; their entries appended to the log with its tiles and head; the release check,
   the orders in force read from the ledger; the disclosures and their entries; the batch's mark);
2. the floor: the same decision, entry and disclosure rows, every entry made beforehand, through
   `store.bulk.insert_rows` (SQLite's executemany, PostgreSQL's COPY) in transactions of the same
   size, and nothing else: no tiles, no release check, no mark.

    python benchmarks/recording.py [--source STORE] [--database-url URL] [--rows N]

`--database-url` names an empty database for each run in turn (it is emptied first), a PostgreSQL
server for its COPY; the default is a SQLite file in _work/recording.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from taxgate.decide import Decision
from taxgate.domain import Outcome, ReasonCode
from taxgate.intake import read_manifest
from taxgate.ledger import merkle
from taxgate.ledger.log import canonical
from taxgate.pipeline.deciding import RECORD_ROWS
from taxgate.release.batch import BatchRecorder, Row, batch_versions, decision_record, encoded
from taxgate.release.entries import disclosure_entry
from taxgate.store import open_store
from taxgate.store.bulk import insert_rows
from taxgate.store.models import Base, DecisionRecord, Disclosure, LedgerEntry

WORK = Path(__file__).parent / "_work" / "recording"
SOURCE = Path(__file__).parent / "_work" / "pipeline_2025" / "warm.db"


def decided(source: Path, limit: int | None) -> tuple[dict, list[Row]]:
    """The first batch of `source` (its batches row) and its decisions as pass 3 hands them over."""
    engine = create_engine(f"sqlite:///{source}")
    with engine.connect() as con:
        batch = con.execute(text("SELECT * FROM batches WHERE id = 1")).mappings().one()
        found = con.execute(
            text(
                "SELECT d.*, x.value FROM decisions d LEFT JOIN disclosures x ON x.decision_id = d.id "
                "WHERE d.batch_id = 1 ORDER BY d.row_number" + (f" LIMIT {limit}" if limit else "")
            )
        ).mappings()
        rows = [
            Row(
                r["row_number"],
                r["request_id"],
                r["requested_tin"],
                Decision(
                    Outcome(r["outcome"]),
                    tuple(ReasonCode(c) for c in r["reasons"].split(";") if c),
                    tuple(i for i in r["refused_items"].split(";") if i),
                    r["matched_tin"],
                    r["runner_up_tin"],
                    r["match_weight"],
                    r["runner_up_weight"],
                ),
                json.loads(r["value"]) if r["value"] else None,
                r["evidence"],
                r["statute"],
                r["official"],
                r["case_number"],
            )
            for r in found
        ]
    engine.dispose()
    return dict(batch), rows


def fresh(url: str):
    """An empty store at `url` (its tables dropped and made again by the store's migrations)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for old in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            old.unlink(missing_ok=True)
    else:
        engine = create_engine(url)
        Base.metadata.drop_all(engine)
        with engine.begin() as con:
            con.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    return open_store(url)


def receipt(store, batch: dict) -> BatchRecorder:
    """The batch received into `store` as it was into the source (same manifest, rows and versions)."""
    return BatchRecorder.open(
        store,
        read_manifest(Path(batch["manifest_path"])),
        batch["rows_sha256"],
        batch["rows"],
        date.fromisoformat(batch["as_of"]),
        {
            "policy": batch["policy_version"],
            "rule_set": batch["rule_set_version"],
            "model": batch["model_version"],
        },
    )


def chunks(rows: list, size: int):
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def recording(url: str, batch: dict, rows: list[Row]) -> float:
    store = fresh(url)
    recorder = receipt(store, batch)
    versions = batch_versions(recorder.batch)
    for r in rows:  # made beforehand, as pass 3's workers make them
        r.entry = encoded(decision_record(r, recorder.batch.id), versions)
    began = time.perf_counter()
    for chunk in chunks(rows, RECORD_ROWS):
        recorder.record(chunk)
    seconds = time.perf_counter() - began
    store.close()
    return seconds


def floor(url: str, batch: dict, rows: list[Row]) -> float:
    store = fresh(url)
    recorder = receipt(store, batch)
    batch_id, versions = recorder.batch.id, batch_versions(recorder.batch)
    now = datetime.now(UTC)
    with store.session() as session:
        start = session.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    index, decision_id, seconds = start, 1, 0.0
    for chunk in chunks(rows, RECORD_ROWS):
        decisions, entries, disclosures = [], [], []  # made beforehand, outside the clock
        for r in chunk:
            record = decision_record(r, batch_id)
            entry, leaf = encoded(record, versions)
            decisions.append({**record, "id": decision_id, "ledger_index": index})
            entries.append({"idx": index, "entry": entry, "leaf_hash": leaf})
            index += 1
            if r.decision.outcome is Outcome.DISCLOSED and r.address:
                value = canonical({k: str(v or "") for k, v in r.address.items()}).decode()
                fields = {
                    "batch_id": batch_id,
                    "row_number": r.row_number,
                    "request_id": r.request_id,
                    "tin": r.decision.matched_tin,
                    "item": "last_known_address",
                    "value": value,
                    "agency": batch["agency"],
                    "statute": r.statute,
                    "at": now,
                }
                entry = canonical(disclosure_entry(fields))
                entries.append({"idx": index, "entry": entry, "leaf_hash": merkle.leaf_hash(entry)})
                disclosures.append(
                    {
                        "decision_id": decision_id,
                        "tin": r.decision.matched_tin,
                        "item": "last_known_address",
                        "value": value,
                        "disclosed_at": now,
                        "ledger_index": index,
                    }
                )
                index += 1
            decision_id += 1
        began = time.perf_counter()
        with store.session.begin() as session:
            con = session.connection()
            insert_rows(con, DecisionRecord.__table__, decisions)
            insert_rows(con, LedgerEntry.__table__, entries)
            insert_rows(con, Disclosure.__table__, disclosures)
        seconds += time.perf_counter() - began
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rows", type=int, default=None, help="the first N decisions only")
    args = parser.parse_args()
    if not args.source.is_file():
        sys.exit(
            f"no store at {args.source}: run `python benchmarks/pipeline_2025.py --steps warm` first"
        )
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ["TAXGATE_LEDGER_KEY"] = str(WORK / "recording.key")  # never the user's key
    url = args.database_url or f"sqlite:///{WORK / 'recording.db'}"
    batch, rows = decided(args.source, args.rows)
    disclosed = sum(r.decision.outcome is Outcome.DISCLOSED for r in rows)
    print(
        f"{len(rows):,} decisions ({disclosed:,} disclosed) of batch {batch['batch_ref']}, "
        f"{RECORD_ROWS:,} a transaction, into {url.split(':')[0]}"
    )
    recorded = recording(url, batch, rows)
    print(
        f"recording (BatchRecorder.record): {recorded:.1f} s = {len(rows) / recorded:,.0f} decisions/s"
    )
    bare = floor(url, batch, rows)
    print(
        f"the same rows bulk-inserted, nothing else: {bare:.1f} s = {len(rows) / bare:,.0f} decisions/s; "
        f"recording costs {recorded / bare:.1f} times that"
    )


if __name__ == "__main__":
    main()
