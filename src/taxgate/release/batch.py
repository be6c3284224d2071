"""Recording a batch: the store's rows and the ledger's entries for it, exactly once.

A batch is known by (agency, batch_ref, SHA-256 of its rows). Its rows are recorded in chunks, each
one transaction holding the decisions, the disclosures and their ledger entries, and moving the
batch's `committed_rows` mark. A batch sent again, or a run killed and started again, finds the mark:
rows at or below it are not recorded twice, and their ledger indexes are read back for the response.
The rules are applied as of the date fixed when the batch was first received, so a resumed run
decides the remaining rows as the first run would have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import select

from taxgate.decide import Decision
from taxgate.domain import Outcome, ReasonCode
from taxgate.intake import Manifest
from taxgate.ledger import (
    Ledger,
    TamperedError,
    canonical,
    checked_row,
    checked_rows,
    sign_checkpoint,
)
from taxgate.ledger.log import loads, raw, stream
from taxgate.ledger.merkle import leaf_hash
from taxgate.notices import owe_on_receipt
from taxgate.orders import orders_in
from taxgate.release import Item, Release
from taxgate.release.entries import (
    BATCH_RECEIVED,
    DECISIONS,
    batch_completed_entry,
    batch_received_entry,
    decision_entry,
    item_value,
)
from taxgate.store import Store, StoreError
from taxgate.store.bulk import insert_rows
from taxgate.store.models import Batch, DecisionRecord, LedgerEntry


@dataclass
class Row:
    """One decided request, as pass 3 hands it over."""

    row_number: int
    request_id: str
    requested_tin: str
    decision: Decision
    address: dict | None
    evidence: str | None  # JSON
    statute: str = ""
    official: str = ""  # the officer named as personally and directly engaged
    case_number: str = ""
    # The decision's ledger entry and its leaf hash, when made beside the decision (`encoded`, in
    # pass 3's workers); None once the decision changes (an order holds it) or when not made.
    entry: tuple[bytes, bytes] | None = None


def decision_record(row: Row, batch_id: int) -> dict:
    """The decisions table's row for a decided request, but for its ledger index."""
    d = row.decision
    return {
        "batch_id": batch_id,
        "row_number": row.row_number,
        "request_id": row.request_id,
        "requested_tin": row.requested_tin,
        "official": row.official,
        "case_number": row.case_number,
        "statute": row.statute,
        "outcome": d.outcome.value,
        "reasons": ";".join(c.value for c in d.codes),
        "refused_items": ";".join(d.refused_items),
        "matched_tin": d.matched_tin,
        "match_weight": d.match_weight,
        "runner_up_tin": d.runner_up_tin,
        "runner_up_weight": d.runner_up_weight,
        "evidence": row.evidence,
    }


def encoded(record: dict, versions: dict) -> tuple[bytes, bytes]:
    """A decision's ledger entry as the ledger appends it, and its leaf hash: made where the request
    is decided, so that the process recording a million of them only stores them."""
    entry = canonical(decision_entry(record, versions))
    return entry, leaf_hash(entry)


def batch_versions(batch: Batch) -> dict:
    """The versions a batch was decided under, as its decisions' entries name them."""
    return {
        "policy_version": batch.policy_version,
        "rule_set_version": batch.rule_set_version,
        "model_version": batch.model_version,
    }


class BatchRecorder:
    def __init__(self, store: Store, ledger: Ledger, batch: Batch, resumed: bool):
        self.store, self.ledger, self.batch, self.resumed = store, ledger, batch, resumed

    @classmethod
    def open(
        cls,
        store: Store,
        manifest: Manifest,
        rows_sha256: str,
        rows: int,
        as_of: date,
        versions: dict,
    ) -> BatchRecorder:
        """Find the batch, or record its receipt (ledgered with the file's SHA-256)."""
        ledger = Ledger(store)
        with store.session.begin() as session:
            batch = session.execute(
                select(Batch).where(
                    Batch.agency == manifest.agency,
                    Batch.batch_ref == manifest.batch_ref,
                    Batch.rows_sha256 == rows_sha256,
                )
            ).scalar_one_or_none()
            if batch is not None:
                # What a resumed run relies on (its as-of date, its versions) is what the ledger says.
                checked_row(session.connection(), BATCH_RECEIVED, batch.id)
                # A restarted run must decide the rest as the first run did, and a batch sent again
                # must get the answer it was given: same policy, rules and model, or nothing.
                received = {
                    "policy": batch.policy_version,
                    "rule_set": batch.rule_set_version,
                    "model": batch.model_version,
                }
                for what, version in received.items():
                    if version != versions[what]:
                        raise StoreError(
                            f"batch {manifest.batch_ref} was received under {what} {version}, not "
                            f"{versions[what]}: process it with the same {what}"
                        )
                if batch.status != "done":
                    _check_mark(session, batch)
                return cls(store, ledger, batch, resumed=True)
            now = datetime.now(UTC)
            batch = Batch(
                agency=manifest.agency,
                batch_ref=manifest.batch_ref,
                manifest_sha256=manifest.sha256,
                manifest_path=str(manifest.path.resolve()),
                rows_sha256=rows_sha256,
                submitted_at=manifest.submitted_at_text,
                signed_by=manifest.signer_name,
                received_at=now,
                as_of=as_of.isoformat(),
                rows=rows,
                policy_version=versions["policy"],
                rule_set_version=versions["rule_set"],
                model_version=versions["model"],
                status="processing",
                committed_rows=0,
            )
            entry = batch_received_entry(
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
                        "policy_version",
                        "rule_set_version",
                        "model_version",
                    )
                }
            )
            (batch.received_index,) = ledger.append(session, [entry])
            session.add(batch)
            session.flush()
            owe_on_receipt(
                session,
                ledger,
                orders_in(session),
                batch.id,
                manifest.agency,
                now,
                {
                    "batch_ref": manifest.batch_ref,
                    "agency": manifest.agency,
                    "rows": rows,
                    "rows_sha256": rows_sha256,
                    "received_at": entry["at"],
                },
            )
        return cls(store, ledger, batch, resumed=False)

    @property
    def as_of(self) -> date:
        return date.fromisoformat(self.batch.as_of)

    def record(self, rows: Sequence[Row]) -> list[int]:
        """Record a chunk (in row order) in one transaction; returns each row's decision ledger index."""
        with self.store.session.begin() as session:
            batch = session.get(Batch, self.batch.id, with_for_update=True)
            done = [r for r in rows if r.row_number <= batch.committed_rows]
            fresh = [r for r in rows if r.row_number > batch.committed_rows]
            indexes: dict[int, int] = {}
            if done:  # the answer given then (an order may have held it), as the ledger says it, not a new one
                recorded = {
                    row["row_number"]: row
                    for row in checked_rows(
                        session.connection(),
                        DECISIONS,
                        DecisionRecord.batch_id == batch.id,
                        DecisionRecord.row_number.between(done[0].row_number, done[-1].row_number),
                    )
                }
                indexes.update(
                    session.execute(
                        select(DecisionRecord.row_number, DecisionRecord.ledger_index).where(
                            DecisionRecord.batch_id == batch.id,
                            DecisionRecord.row_number.between(
                                done[0].row_number, done[-1].row_number
                            ),
                        )
                    ).all()
                )
                for r in done:
                    if r.row_number not in recorded or r.row_number not in indexes:
                        raise TamperedError(
                            f"batch {batch.id} row {r.row_number} is below the batch's mark but "
                            "has no row in decisions"
                        )
                    outcome, reasons = (
                        recorded[r.row_number]["outcome"],
                        recorded[r.row_number]["reasons"],
                    )
                    if outcome != r.decision.outcome.value:
                        r.decision = replace(
                            r.decision,
                            outcome=Outcome(outcome),
                            codes=tuple(ReasonCode(c) for c in reasons.split(";") if c),
                        )
            if fresh:
                release = Release(session, self.ledger, datetime.now(UTC))
                self._hold(release, batch, fresh)
                indexes.update(self._record_fresh(session, release, batch, fresh))
                batch.committed_rows = fresh[-1].row_number
        return [indexes[r.row_number] for r in rows]

    def _hold(self, release: Release, batch: Batch, rows: Sequence[Row]) -> None:
        """At release, in the transaction that would record it: an order in force now holds it."""
        for r in rows:
            if r.decision.outcome is Outcome.DISCLOSED:
                held = release.held_by(batch.id, batch.batch_ref, batch.agency, r.statute)
                if held is not None:
                    r.decision = replace(
                        r.decision, outcome=Outcome.HELD, codes=(*r.decision.codes, held[0])
                    )
                    r.entry = None  # made for the decision before it was held

    def _record_fresh(
        self, session, release: Release, batch: Batch, rows: Sequence[Row]
    ) -> dict[int, int]:
        decisions = [decision_record(r, batch.id) for r in rows]
        versions = batch_versions(batch)
        span = self.ledger.append_encoded(
            session,
            [r.entry or encoded(row, versions) for r, row in zip(rows, decisions)],
        )
        for row, index in zip(decisions, span):
            row["ledger_index"] = index
        insert_rows(session.connection(), DecisionRecord.__table__, decisions)
        leaving = [
            r for r in rows if r.decision.outcome in (Outcome.DISCLOSED, Outcome.HELD) and r.address
        ]
        if leaving:
            ids = dict(
                session.execute(
                    select(DecisionRecord.row_number, DecisionRecord.id).where(
                        DecisionRecord.batch_id == batch.id,
                        DecisionRecord.row_number.between(rows[0].row_number, rows[-1].row_number),
                    )
                ).all()
            )
            items = [
                Item(
                    ids[r.row_number],
                    batch.id,
                    batch.batch_ref,
                    r.row_number,
                    r.request_id,
                    r.decision.matched_tin,
                    item_value(r.address),
                    batch.agency,
                    r.statute,
                )
                for r in leaving
            ]
            release.record(items, [r.decision.outcome is Outcome.HELD for r in leaving])
        return {row["row_number"]: row["ledger_index"] for row in decisions}

    def complete(self, outcomes: Counter[str]) -> str:
        """Ledger the batch's completion (once), then sign a checkpoint; returns the checkpoint note."""
        with self.store.session.begin() as session:
            batch = session.get(Batch, self.batch.id, with_for_update=True)
            if batch.status != "done":
                (index,) = self.ledger.append(
                    session, [batch_completed_entry(batch.id, batch.rows, outcomes)]
                )
                batch.status, batch.completed_index = "done", index
        self.batch = batch
        return sign_checkpoint(self.store)


def _check_mark(session, batch: Batch) -> None:
    """Before a batch is resumed from its mark: the ledger holds decisions of this batch up to the
    mark and none beyond it (read from the entries since its receipt, by their content), so that a
    mark moved back, or rows deleted with it, never gets a request decided and ledgered twice."""
    marker, mine = b'"kind":"decision"', f'"batch":{batch.id},'.encode()
    last = 0
    query = (
        select(raw(LedgerEntry.entry))
        .where(LedgerEntry.idx > batch.received_index)
        .order_by(LedgerEntry.idx)
    )
    for (entry,) in stream(session.connection(), query):
        if type(entry) is bytes and marker in entry and mine in entry:
            try:
                found = loads(entry)
            except ValueError:
                raise TamperedError(
                    f"a ledger entry of batch {batch.id} is not an entry taxgate writes"
                ) from None
            if (
                isinstance(found, dict)
                and found.get("kind") == "decision"
                and found.get("batch") == batch.id
            ):
                last = max(last, found["row"])
    if last != batch.committed_rows:
        raise TamperedError(
            f"batch {batch.id}'s mark says {batch.committed_rows:,} rows were recorded, the ledger "
            f"holds its decisions up to row {last:,}"
        )
