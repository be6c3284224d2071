"""Recording a batch: the store's rows and the ledger's entries for it, exactly once.

A batch is known by (agency, batch_ref, SHA-256 of its rows). Its rows are recorded in chunks, each
one transaction holding the decisions, the disclosures and their ledger entries, and moving the
batch's `committed_rows` mark. A batch sent again, or a run killed and started again, finds the mark:
rows at or below it are not recorded twice, and their ledger indexes are read back for the response.
The rules are applied as of the date fixed when the batch was first received, so a resumed run
decides the remaining rows as the first run would have.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import insert, select

from taxgate.decide import Decision
from taxgate.domain import Outcome, ReasonCode
from taxgate.notices import owe, owe_on_receipt, sent_at
from taxgate.orders import holding, orders_in
from taxgate.intake import Manifest
from taxgate.ledger import Ledger, Problem, canonical, load_signer
from taxgate.policy import Policy, PolicyError, load_policies, policy_in_force
from taxgate.store import Store, StoreError
from taxgate.store.models import Batch, Decision as DecisionRow, Disclosure, HeldItem, LedgerEntry, Review

DISCLOSABLE = "last_known_address"


def _weight(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def decision_entry(batch: Batch, row: dict) -> dict:
    """The ledger entry of one decision, from the row the store keeps (so verify can rebuild it),
    with the rule-set and model versions it was decided under."""
    return {
        "kind": "decision", "batch": batch.id, "row": row["row_number"], "request_id": row["request_id"],
        "rule_set": f"{batch.rule_set_version}+{batch.policy_version}", "model": batch.model_version,
        "official": row["official"], "case": row["case_number"],
        "outcome": row["outcome"], "reasons": [c for c in row["reasons"].split(";") if c],
        "refused_items": [r for r in row["refused_items"].split(";") if r],
        "matched_tin": row["matched_tin"], "weight": _weight(row["match_weight"]),
        "runner_up_tin": row["runner_up_tin"], "runner_up_weight": _weight(row["runner_up_weight"]),
    }


def disclosure_entry(batch_id: int, row_number: int, request_id: str, tin: str, value: str) -> dict:
    """The ledger entry of one disclosure; the released value is committed to by its SHA-256."""
    return {"kind": "disclosure", "batch": batch_id, "row": row_number, "request_id": request_id, "tin": tin,
            "item": DISCLOSABLE, "value_sha256": hashlib.sha256(value.encode()).hexdigest()}


def review_entry(batch_id: int, row_number: int, request_id: str, officer: str, action: str, note: str,
                 at: datetime) -> dict:
    """The ledger entry of a disclosure officer's decision on a request in REVIEW; the note is
    committed to by its SHA-256 (it may name the taxpayer)."""
    return {"kind": "review", "batch": batch_id, "row": row_number, "request_id": request_id, "officer": officer,
            "action": action, "note_sha256": hashlib.sha256(note.encode()).hexdigest(),
            "at": at.isoformat(timespec="seconds")}


def item_value(address: dict) -> str:
    """What leaves (or would): the address as canonical JSON, as stored and hashed into the ledger."""
    return canonical({k: str(v or "") for k, v in address.items()}).decode()


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


class BatchRecorder:
    def __init__(self, store: Store, ledger: Ledger, batch: Batch, resumed: bool):
        self.store, self.ledger, self.batch, self.resumed = store, ledger, batch, resumed

    @classmethod
    def open(cls, store: Store, manifest: Manifest, rows_sha256: str, rows: int, as_of: date, versions: dict) -> BatchRecorder:
        """Find the batch, or record its receipt (ledgered with the file's SHA-256)."""
        ledger = Ledger(store)
        with store.session.begin() as session:
            batch = session.execute(select(Batch).where(
                Batch.agency == manifest.agency, Batch.batch_ref == manifest.batch_ref,
                Batch.rows_sha256 == rows_sha256)).scalar_one_or_none()
            if batch is not None:
                # A restarted run must decide the rest as the first run did, and a batch sent again
                # must get the answer it was given: same policy, rules and model, or nothing.
                received = {"policy": batch.policy_version, "rule_set": batch.rule_set_version,
                            "model": batch.model_version}
                for what, version in received.items():
                    if version != versions[what]:
                        raise StoreError(f"batch {manifest.batch_ref} was received under {what} {version}, not "
                                         f"{versions[what]}: process it with the same {what}")
                return cls(store, ledger, batch, resumed=True)
            now = datetime.now(UTC)
            entry = {
                "kind": "batch_received", "at": now.isoformat(timespec="seconds"), "agency": manifest.agency,
                "batch_ref": manifest.batch_ref, "submitted_at": manifest.submitted_at_text,
                "signed_by": manifest.signer_name, "manifest_sha256": manifest.sha256, "rows_sha256": rows_sha256,
                "rows": rows, "as_of": as_of.isoformat(), **versions,
            }
            (index,) = ledger.append(session, [entry])
            batch = Batch(agency=manifest.agency, batch_ref=manifest.batch_ref, manifest_sha256=manifest.sha256,
                          manifest_path=str(manifest.path.resolve()), rows_sha256=rows_sha256, submitted_at=manifest.submitted_at_text, received_at=now,
                          as_of=as_of.isoformat(), rows=rows, policy_version=versions["policy"],
                          rule_set_version=versions["rule_set"], model_version=versions["model"],
                          status="processing", committed_rows=0, received_index=index)
            session.add(batch)
            session.flush()
            owe_on_receipt(session, ledger, orders_in(session), batch.id, manifest.agency, now,
                           {"batch_ref": manifest.batch_ref, "agency": manifest.agency, "rows": rows,
                            "rows_sha256": rows_sha256, "received_at": entry["at"]})
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
            if done:
                recorded = {number: (index, outcome, reasons) for number, index, outcome, reasons in session.execute(
                    select(DecisionRow.row_number, DecisionRow.ledger_index, DecisionRow.outcome, DecisionRow.reasons)
                    .where(DecisionRow.batch_id == batch.id,
                           DecisionRow.row_number.between(done[0].row_number, done[-1].row_number)))}
                for r in done:  # the answer given then (an order may have held it), not a new one
                    index, outcome, reasons = recorded[r.row_number]
                    indexes[r.row_number] = index
                    if outcome != r.decision.outcome.value:
                        r.decision = replace(r.decision, outcome=Outcome(outcome),
                                             codes=tuple(ReasonCode(c) for c in reasons.split(";") if c))
            if fresh:
                self._hold(session, batch, fresh)
                indexes.update(self._record_fresh(session, batch, fresh))
                batch.committed_rows = fresh[-1].row_number
        return [indexes[r.row_number] for r in rows]

    def _hold(self, session, batch: Batch, rows: Sequence[Row]) -> None:
        """At release, in the transaction that would record it: an order in force now holds it."""
        orders = orders_in(session)
        now = datetime.now(UTC)
        noticed = sent_at(session, "pre_transfer", batch.id)
        for r in rows:
            if r.decision.outcome is Outcome.DISCLOSED:
                held = holding(orders, batch.agency, r.statute, now, noticed)
                if held is not None:
                    code, order = held
                    r.decision = replace(r.decision, outcome=Outcome.HELD, codes=(*r.decision.codes, code))
                    if order.kind == "notice_before_transfer":  # owed now: the transfer waits for it
                        owe(session, self.ledger, "pre_transfer", order, batch.id, now,
                            {"batch_ref": batch.batch_ref, "agency": batch.agency, "hours": order.hours})

    def _record_fresh(self, session, batch: Batch, rows: Sequence[Row]) -> dict[int, int]:
        decisions, entries, released, held = [], [], [], []
        for r in rows:
            d = r.decision
            row = {
                "batch_id": batch.id, "row_number": r.row_number, "request_id": r.request_id,
                "requested_tin": r.requested_tin, "official": r.official, "case_number": r.case_number,
                "outcome": d.outcome.value,
                "reasons": ";".join(c.value for c in d.codes), "refused_items": ";".join(d.refused_items),
                "matched_tin": d.matched_tin, "match_weight": d.match_weight, "runner_up_tin": d.runner_up_tin,
                "runner_up_weight": d.runner_up_weight, "evidence": r.evidence,
            }
            decisions.append(row)
            entries.append(decision_entry(batch, row))
            if d.outcome is Outcome.DISCLOSED and r.address:
                value = item_value(r.address)
                released.append((len(decisions) - 1, d.matched_tin, value))
                entries.append(disclosure_entry(batch.id, r.row_number, r.request_id, d.matched_tin, value))
            elif d.outcome is Outcome.HELD and r.address:
                held.append((r.row_number, d.matched_tin, item_value(r.address), r.statute))
        span = iter(self.ledger.append(session, entries))
        out: dict[int, int] = {}
        disclosure_index: dict[int, int] = {}
        released_at = {i for i, _, _ in released}
        for i, row in enumerate(decisions):
            row["ledger_index"] = next(span)
            out[row["row_number"]] = row["ledger_index"]
            if i in released_at:
                disclosure_index[i] = next(span)
        session.execute(insert(DecisionRow), decisions)
        if released or held:
            ids = dict(session.execute(select(DecisionRow.row_number, DecisionRow.id).where(
                DecisionRow.batch_id == batch.id,
                DecisionRow.row_number.between(rows[0].row_number, rows[-1].row_number))).all())
        if held:
            session.execute(insert(HeldItem), [
                {"decision_id": ids[row_number], "tin": tin, "item": DISCLOSABLE, "value": value,
                 "agency": batch.agency, "statute": statute}
                for row_number, tin, value, statute in held
            ])
        if released:
            now = datetime.now(UTC)
            session.execute(insert(Disclosure), [
                {"decision_id": ids[decisions[i]["row_number"]], "tin": tin, "item": DISCLOSABLE, "value": value,
                 "disclosed_at": now, "ledger_index": disclosure_index[i]}
                for i, tin, value in released
            ])
        return out

    def complete(self, outcomes: Counter[str]) -> str:
        """Ledger the batch's completion (once) and sign a checkpoint; returns the checkpoint note."""
        signer = load_signer()
        with self.store.session.begin() as session:
            batch = session.get(Batch, self.batch.id, with_for_update=True)
            if batch.status != "done":
                (index,) = self.ledger.append(session, [{
                    "kind": "batch_completed", "batch": batch.id, "rows": batch.rows,
                    "outcomes": dict(sorted(outcomes.items())),
                }])
                batch.status, batch.completed_index = "done", index
            note = self.ledger.checkpoint(session, signer)
        self.batch = batch
        return note


def verify_records(store: Store) -> Iterator[Problem]:
    """Check the store's decisions and disclosures against their ledger entries: an edit made to a
    decision or a released address after the fact no longer matches what was ledgered."""
    fields = ("row_number", "request_id", "official", "case_number", "outcome", "reasons", "refused_items",
              "matched_tin", "match_weight", "runner_up_tin", "runner_up_weight")
    with store.session() as session:
        batches = {b.id: b for b in session.execute(select(Batch)).scalars()}
        decisions = session.execute(
            select(DecisionRow, LedgerEntry.entry).outerjoin(LedgerEntry, LedgerEntry.idx == DecisionRow.ledger_index)
            .order_by(DecisionRow.ledger_index).execution_options(yield_per=20_000))
        for d, entry in decisions:
            batch = batches.get(d.batch_id)
            expected = batch and canonical(decision_entry(batch, {f: getattr(d, f) for f in fields}))
            if entry is None or bytes(entry) != expected:
                yield Problem(d.ledger_index, f"decision for request {d.request_id} (batch {d.batch_id}, row "
                                              f"{d.row_number}) differs from its ledger entry {d.ledger_index}")
                return
        disclosures = session.execute(
            select(Disclosure, DecisionRow.batch_id, DecisionRow.row_number, DecisionRow.request_id, LedgerEntry.entry)
            .join(DecisionRow, DecisionRow.id == Disclosure.decision_id)
            .outerjoin(LedgerEntry, LedgerEntry.idx == Disclosure.ledger_index)
            .order_by(Disclosure.ledger_index).execution_options(yield_per=20_000))
        for x, batch_id, row_number, request_id, entry in disclosures:
            expected = canonical(disclosure_entry(batch_id, row_number, request_id, x.tin, x.value))
            if entry is None or bytes(entry) != expected:
                yield Problem(x.ledger_index, f"disclosure for request {request_id} (batch {batch_id}) differs from "
                                              f"its ledger entry {x.ledger_index}")
                return
        reviews = session.execute(
            select(Review, DecisionRow.batch_id, DecisionRow.row_number, DecisionRow.request_id, LedgerEntry.entry)
            .join(DecisionRow, DecisionRow.id == Review.decision_id)
            .outerjoin(LedgerEntry, LedgerEntry.idx == Review.ledger_index).order_by(Review.ledger_index))
        for r, batch_id, row_number, request_id, entry in reviews:
            expected = canonical(review_entry(batch_id, row_number, request_id, r.officer, r.action, r.note, r.at))
            if entry is None or bytes(entry) != expected:
                yield Problem(r.ledger_index, f"review of request {request_id} (batch {batch_id}) differs from its "
                                              f"ledger entry {r.ledger_index}")
                return


def release_held(store: Store, now: datetime | None = None, policies: list[Policy] | None = None) -> list[dict]:
    """Decide held items again: each one no order holds any more is released now, once (its
    disclosure ledgered like any other), provided the law still allows it at this moment: an
    agreement with the agency in force and no open safeguard findings (§ 6103(p)(4)), by the policy
    in force today. Returns what was released, for the requester's response."""
    ledger = Ledger(store)
    released: list[dict] = []
    now = now or datetime.now(UTC)
    allowed = releasable(policies if policies is not None else load_policies(), now.date())
    with store.session.begin() as session:
        orders = orders_in(session)
        pending = session.execute(
            select(HeldItem, DecisionRow, Batch).join(DecisionRow, DecisionRow.id == HeldItem.decision_id)
            .join(Batch, Batch.id == DecisionRow.batch_id)
            .where(HeldItem.released_at.is_(None)).order_by(HeldItem.id).with_for_update(of=HeldItem)).all()
        noticed: dict[int, dict] = {}  # batch id -> its pre-transfer notices, read once per batch
        for item, decision, batch in pending:
            if batch.id not in noticed:
                noticed[batch.id] = sent_at(session, "pre_transfer", batch.id)
            if not allowed(item.agency) or holding(orders, item.agency, item.statute, now, noticed[batch.id]) is not None:
                continue
            (index,) = ledger.append(session, [disclosure_entry(batch.id, decision.row_number, decision.request_id,
                                                                item.tin, item.value)])
            session.add(Disclosure(decision_id=decision.id, tin=item.tin, item=item.item, value=item.value,
                                   disclosed_at=now, ledger_index=index))
            item.released_at = now
            released.append({"batch_ref": batch.batch_ref, "request_id": decision.request_id, "ledger_index": index,
                             **{f"address_{k}": v for k, v in json.loads(item.value).items()}})
    return released


def releasable(policies: list[Policy], day: date):
    """Whether anything may leave to an agency on `day`: the agreement with it in force (it may
    have expired while the item was held) and its safeguards not found deficient."""
    try:
        policy = policy_in_force(policies, day)
    except PolicyError:
        return lambda agency: False  # no policy in force: nothing leaves

    def allowed(agency: str) -> bool:
        known = policy.agencies.get(agency)
        return policy.agreement_for(agency, day) is not None and known is not None and not known.safeguards_deficient

    return allowed
