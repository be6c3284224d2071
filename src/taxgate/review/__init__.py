"""The review queue: requests whose identification was near the line (outcome REVIEW) wait for a
disclosure officer, who sees the request beside the taxpayer's record with the per-field evidence
and decides. The decision is ledgered; a confirmed identification releases the last known address
(§ 6103(i)(2)(C), (b)(6)), unless an order in force holds it or the agency may not receive it now
(§ 6103(p)(4)). An officer decides each request once.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select

from taxgate.domain import Outcome
from taxgate.identify.evidence import thresholds_line, why
from taxgate.identify.master import last_known_address, taxpayer_records
from taxgate.ledger import Binding, Field, Ledger, TamperedError, at, checked_row, sign_checkpoint
from taxgate.ledger.signing import entries_of_kinds
from taxgate.policy import Policy, load_policies, policy_in_force
from taxgate.release import Item, releasable, release_or_hold
from taxgate.release.entries import BATCH_RECEIVED, DECISIONS, item_value, sha256
from taxgate.rules import REPLAYED_VERSIONS
from taxgate.store import Store
from taxgate.store.models import Batch, DecisionRecord, Review

ACTIONS = {
    "disclose": "the request is about this taxpayer: release the last known address",
    "decline": "not this taxpayer, or not sure enough: nothing leaves",
}
MIN_NOTE = 10  # an officer says why, in words


def review_entry(row: dict) -> dict:
    """The entry of an officer's decision on a request in REVIEW; the note is committed to by its
    SHA-256 (it may name the taxpayer)."""
    return {
        "kind": "review",
        "batch": row["batch_id"],
        "row": row["row_number"],
        "request_id": row["request_id"],
        "officer": row["officer"],
        "action": row["action"],
        "note_sha256": sha256(row["note"]),
        "at": at(row["at"]),
    }


REVIEWS = Binding(
    kind="review",
    table="reviews",
    index=Review.ledger_index,
    key=Review.id,
    source=Review.__table__.outerjoin(
        DecisionRecord.__table__, DecisionRecord.id == Review.decision_id
    ),
    fields=(
        Field("batch_id", DecisionRecord.batch_id, "int"),
        Field("row_number", DecisionRecord.row_number, "int"),
        Field("request_id", DecisionRecord.request_id),
        Field("officer", Review.officer),
        Field("action", Review.action),
        Field("note", Review.note),
        Field("at", Review.at, "moment"),
    ),
    entry=lambda row, _: review_entry(row),
    describe=lambda row: (
        f"batch {row['batch_id']}, row {row['row_number']}, request {row['request_id']}"
    ),
)
BINDINGS = (REVIEWS,)


class ReviewError(ValueError):
    """A review cannot be recorded as asked. `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


QUEUE_ORDERS = {
    "oldest": (DecisionRecord.ledger_index,),
    "newest": (DecisionRecord.ledger_index.desc(),),
    "weight": (DecisionRecord.match_weight, DecisionRecord.ledger_index),  # the weakest first
    "weight-desc": (DecisionRecord.match_weight.desc(), DecisionRecord.ledger_index),
}


def review_queue(
    store: Store,
    limit: int = 200,
    offset: int = 0,
    batch_ref: str = "",
    agency: str = "",
    code: str = "",
    order: str = "oldest",
) -> tuple[int, list[dict]]:
    """Requests in REVIEW that no officer has decided (of one batch, agency or identification code,
    when given), oldest first or as `order` says: (how many in all, one page)."""
    waiting = (
        select(DecisionRecord.id)
        .join(Batch, Batch.id == DecisionRecord.batch_id)
        .where(
            DecisionRecord.outcome == Outcome.REVIEW.value,
            Batch.rule_set_version.not_in(REPLAYED_VERSIONS),
        )
        .where(~select(Review.id).where(Review.decision_id == DecisionRecord.id).exists())
    )
    if batch_ref:
        waiting = waiting.where(Batch.batch_ref == batch_ref)
    if agency:
        waiting = waiting.where(Batch.agency == agency)
    if code:
        waiting = waiting.where((";" + DecisionRecord.reasons + ";").contains(f";{code};"))
    with store.session() as session:
        total = session.execute(select(func.count()).select_from(waiting.subquery())).scalar_one()
        rows = session.execute(
            select(DecisionRecord, Batch.agency, Batch.batch_ref, Batch.received_at)
            .join(Batch, Batch.id == DecisionRecord.batch_id)
            .where(DecisionRecord.id.in_(waiting))
            .order_by(*QUEUE_ORDERS.get(order, QUEUE_ORDERS["oldest"]))
            .limit(limit)
            .offset(offset)
        ).all()
    return total, [
        {
            "decision": d.id,
            "batch": d.batch_id,
            "agency": agency,
            "batch_ref": ref,
            "received": received.isoformat(timespec="seconds"),
            "row": d.row_number,
            "request_id": d.request_id,
            "reasons": d.reasons,
            "matched_tin": d.matched_tin,
            "weight": d.match_weight,
            "runner_up_weight": d.runner_up_weight,
        }
        for d, agency, ref, received in rows
    ]


def queue_batches(store: Store) -> list[str]:
    """The batches that have a request waiting for review (for the queue's filter)."""
    with store.session() as session:
        return list(
            session.execute(
                select(Batch.batch_ref)
                .join(DecisionRecord, DecisionRecord.batch_id == Batch.id)
                .where(
                    DecisionRecord.outcome == Outcome.REVIEW.value,
                    Batch.rule_set_version.not_in(REPLAYED_VERSIONS),
                    ~select(Review.id).where(Review.decision_id == DecisionRecord.id).exists(),
                )
                .group_by(Batch.batch_ref)
                .order_by(Batch.batch_ref)
            ).scalars()
        )


def review_case(
    store: Store,
    decision_id: int,
    master_path: Path,
    open_only: bool = True,
    policies: list[Policy] | None = None,
) -> dict:
    """What the officer sees: the request as sent, the candidate's and the runner-up's records as
    filed, the per-field evidence, the rule that put the request where it is (in words, with the
    thresholds of the policy the batch was judged under), and any decision already made. The
    master's records of a taxpayer are shown only to decide a request in REVIEW (`open_only`): a
    decided request, or one never in review, is not a window on the master (an auditor passes
    open_only=False)."""
    with store.session() as session:
        found = session.execute(
            select(DecisionRecord, Batch)
            .join(Batch, Batch.id == DecisionRecord.batch_id)
            .where(DecisionRecord.id == decision_id)
        ).first()
        if found is None:
            raise ReviewError(f"no decision {decision_id}", 404)
        decision, batch = found
        review = session.execute(
            select(Review).where(Review.decision_id == decision_id)
        ).scalar_one_or_none()
    if open_only and (decision.outcome != "REVIEW" or review is not None):
        state = "decided" if review is not None else decision.outcome
        raise ReviewError(
            f"decision {decision_id} is not in review ({state}): its case is closed to officers",
            409,
        )
    if open_only and batch.rule_set_version in REPLAYED_VERSIONS:
        raise ReviewError(
            f"decision {decision_id} belongs to a replay of past practice: nothing of it is decided now",
            409,
        )
    evidence = json.loads(decision.evidence) if decision.evidence else {}
    records = taxpayer_records(master_path, [decision.matched_tin, decision.runner_up_tin])
    rule = policy_in_force(
        policies if policies is not None else load_policies(), date.fromisoformat(batch.as_of)
    ).identification
    lines = (rule.threshold, rule.review, rule.margin)
    return {
        "decision": decision.id,
        "batch": batch.id,
        "agency": batch.agency,
        "batch_ref": batch.batch_ref,
        "row": decision.row_number,
        "request_id": decision.request_id,
        "outcome": decision.outcome,
        "reasons": [c for c in decision.reasons.split(";") if c],
        "official": decision.official,
        "case_number": decision.case_number,
        "ledger_index": decision.ledger_index,
        "request": evidence.get("request") or {},
        "candidate": {
            "tin": decision.matched_tin,
            "weight": decision.match_weight,
            "records": records.get(decision.matched_tin, []),
        },
        "runner_up": {
            "tin": decision.runner_up_tin,
            "weight": decision.runner_up_weight,
            "records": records.get(decision.runner_up_tin, []),
        },
        "fields": evidence.get("fields") or {},
        "facts": {
            k: evidence.get(k)
            for k in (
                "decision",
                "names_agree",
                "middle_initial_conflict",
                "namesakes_at_address",
                "names",
                "dob",
                "address",
                "rule",
            )
        },
        "candidate_facts": evidence.get("candidate") or {},
        "thresholds": {"threshold": rule.threshold, "review": rule.review, "margin": rule.margin},
        "why": why(evidence, *lines) if evidence else [],
        "weights": thresholds_line(evidence, *lines) if evidence else "",
        "review": None
        if review is None
        else {
            "officer": review.officer,
            "action": review.action,
            "note": review.note,
            "at": review.at.isoformat(timespec="seconds"),
            "ledger_index": review.ledger_index,
        },
    }


def decide_review(
    store: Store,
    decision_id: int,
    officer: str,
    action: str,
    note: str,
    master_path: Path,
    policies: list[Policy] | None = None,
    now: datetime | None = None,
) -> dict:
    """Record an officer's decision on a request in REVIEW, ledgered; on `disclose`, release the
    last known address now, or hold it if an order in force holds it. Returns what happened."""
    if action not in ACTIONS:
        raise ReviewError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}", 422)
    note = note.strip()
    if len(note) < MIN_NOTE:
        raise ReviewError(f"say why in the note (at least {MIN_NOTE} characters)", 422)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    allowed = releasable(policies if policies is not None else load_policies(), now.date())
    ledger = Ledger(store)
    with store.session.begin() as session:
        decision = session.get(DecisionRecord, decision_id, with_for_update=True)
        if decision is None:
            raise ReviewError(f"no decision {decision_id}", 404)
        if decision.outcome != Outcome.REVIEW.value:
            raise ReviewError(f"decision {decision_id} is {decision.outcome}, not in review")
        done = session.execute(
            select(Review).where(Review.decision_id == decision_id)
        ).scalar_one_or_none()
        if done is not None:
            raise ReviewError(
                f"decision {decision_id} was decided by {done.officer} at {done.at.isoformat()}"
            )
        # The candidate, the evidence and the statute the release reads are the ones the ledger says,
        # and a request the ledger says was reviewed is not reviewed again (its row may be gone).
        checked_row(session.connection(), DECISIONS, decision.id)
        checked_row(
            session.connection(), BATCH_RECEIVED, decision.batch_id
        )  # the agency it would go to
        batch = session.get(Batch, decision.batch_id)
        if batch.rule_set_version in REPLAYED_VERSIONS:  # checked against its entry above
            raise ReviewError(
                f"decision {decision_id} belongs to a replay of past practice ({batch.rule_set_version}): "
                "a replay is a record of what was done, and nothing of it is decided or released now"
            )
        for index, entry in entries_of_kinds(session, ("review",)):
            if (entry.get("batch"), entry.get("row")) == (batch.id, decision.row_number):
                raise TamperedError(
                    f"ledger entry {index} records a review of this request, but no reviews row "
                    "does"
                )
        evidence = json.loads(decision.evidence) if decision.evidence else {}
        address = None
        if action == "disclose":
            if not allowed(batch.agency):
                raise ReviewError(
                    f"nothing may leave to {batch.agency} today: no agreement in force, or its "
                    "safeguards are found deficient (§ 6103(p)(4))"
                )
            address = last_known_address(master_path, decision.matched_tin)
            if address is None:
                raise ReviewError(
                    f"the master holds no record for the candidate {decision.matched_tin}"
                )
        (index,) = ledger.append(
            session,
            [
                review_entry(
                    {
                        "batch_id": batch.id,
                        "row_number": decision.row_number,
                        "request_id": decision.request_id,
                        "officer": officer,
                        "action": action,
                        "note": note,
                        "at": now,
                    }
                )
            ],
        )
        session.add(
            Review(
                decision_id=decision.id,
                officer=officer,
                action=action,
                note=note,
                at=now,
                ledger_index=index,
            )
        )
        result = {
            "decision": decision.id,
            "request_id": decision.request_id,
            "action": action,
            "outcome": Outcome.NOT_DISCLOSED.value,
            "ledger_index": index,
        }
        if address is not None:
            statute = (evidence.get("request") or {}).get("statute") or ""
            item = Item(
                decision.id,
                batch.id,
                batch.batch_ref,
                decision.row_number,
                decision.request_id,
                decision.matched_tin,
                item_value(address),
                batch.agency,
                statute,
            )
            ((outcome, item_index, order),) = release_or_hold(session, ledger, [item], now, allowed)
            result["outcome"] = outcome.value
            if outcome is Outcome.DISCLOSED:
                result["disclosure_index"] = item_index
            elif outcome is Outcome.HELD:
                result["held_by"] = order.id
    sign_checkpoint(
        store
    )  # the review is signed at once: a request reviewed is never reviewed again
    return result
