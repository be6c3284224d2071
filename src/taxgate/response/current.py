"""The requester's response as it stands now, read from the store: each request's row as it was
decided, with what happened to it since (an officer's review disclosed or declined it; a held
address was released when its hold ended), up to the latest signed checkpoint.

The response written when the batch was decided says what was decided then. A request in REVIEW or
HELD is answered later, and the requester must not have to find that answer elsewhere: the row
itself changes, `updated_ledger_index` names the ledger entry that changed it, and every row says
the checkpoint it is current to (`as_of_ledger_size`), so the whole file can be checked against
that one signed checkpoint. With nothing changed, the rows are the ones written at decision time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, select

from taxgate.domain import Outcome, ReasonCode
from taxgate.ledger import Ledger
from taxgate.ledger.checkpoint import parse_note
from taxgate.orders import list_orders, order_holding
from taxgate.response import RESPONSE_COLUMNS, spreadsheet_safe
from taxgate.store import Store
from taxgate.store.models import Batch, DecisionRecord, Disclosure, HeldItem, Review

CURRENT_COLUMNS = (*RESPONSE_COLUMNS, "updated_ledger_index", "as_of_ledger_size")
_ADDRESS = ("street", "unit", "city", "state", "zip", "tax_year")
REQUESTER_CODES = frozenset(
    c.value for c in ReasonCode if c.requester_visible
)  # what a requester is told


def checkpoint_size(store: Store) -> int:
    """The size of the latest signed checkpoint: what the current response is current to."""
    with store.session() as session:
        note = Ledger(store).latest_checkpoint(session)
    return parse_note(note).size if note else 0


def standing(columns, size: int):
    """`columns` over the decisions, each with what befell it inside ledger size `size`."""
    return (
        select(*columns)
        .select_from(DecisionRecord)
        .outerjoin(
            Disclosure,
            and_(Disclosure.decision_id == DecisionRecord.id, Disclosure.ledger_index < size),
        )
        .outerjoin(
            Review, and_(Review.decision_id == DecisionRecord.id, Review.ledger_index < size)
        )
        .outerjoin(
            HeldItem, and_(HeldItem.decision_id == DecisionRecord.id, HeldItem.ledger_index < size)
        )
        .where(DecisionRecord.ledger_index < size)
    )


# The one definition of a request's outcome now, and of the entry that changed it since its decision.
NOW = case(
    (Disclosure.id.is_not(None), Outcome.DISCLOSED.value),
    (Review.action == "decline", Outcome.NOT_DISCLOSED.value),
    (
        Review.action == "disclose",
        Outcome.HELD.value,
    ),  # the officer disclosed it; an order holds it
    else_=DecisionRecord.outcome,
).label("now")
CHANGED_BY = case(
    (
        and_(Disclosure.id.is_not(None), DecisionRecord.outcome != Outcome.DISCLOSED.value),
        Disclosure.ledger_index,
    ),
    (Review.action == "decline", Review.ledger_index),
    (Review.action == "disclose", func.coalesce(HeldItem.ledger_index, Review.ledger_index)),
    else_=None,
).label("changed_by")


def current_rows(store: Store, batch_id: int, size: int, chunk: int = 5_000) -> Iterator[dict]:
    """Each request of the batch in row order, as it stands at ledger size `size`. A request an
    officer disclosed but an order then held says which kind of order holds it, as a request held
    at decision time does (HELD_BY_COURT_ORDER, or NOTICE_PERIOD)."""
    query = (
        standing(
            (
                DecisionRecord.row_number,
                DecisionRecord.request_id,
                NOW,
                DecisionRecord.outcome.label("decided"),
                DecisionRecord.reasons,
                DecisionRecord.refused_items,
                DecisionRecord.ledger_index,
                DecisionRecord.statute,
                Disclosure.value,
                CHANGED_BY,
            ),
            size,
        )
        .where(DecisionRecord.batch_id == batch_id)
        .order_by(DecisionRecord.row_number)
        .execution_options(yield_per=chunk)
    )
    holds = _Holds(store, batch_id)  # read before the rows: one session at a time
    with store.session() as session:
        for row in session.execute(query):
            address = json.loads(row.value) if row.value is not None else {}
            reasons = [c for c in row.reasons.split(";") if c in REQUESTER_CODES]
            if row.now == Outcome.HELD.value and row.decided != Outcome.HELD.value:
                reasons.append(holds.code(row.statute))
            yield {
                "row_number": str(row.row_number),
                "request_id": row.request_id,
                "outcome": row.now,
                "reasons": ";".join(reasons),
                "refused_items": row.refused_items,
                **{f"address_{p}": str(address.get(p, "") or "") for p in _ADDRESS},
                "ledger_index": str(row.ledger_index),
                "updated_ledger_index": "" if row.changed_by is None else str(row.changed_by),
                "as_of_ledger_size": str(size),
            }


class _Holds:
    """Which kind of order holds a batch's requests now (read once, for the few held after review)."""

    def __init__(self, store: Store, batch_id: int):
        with store.session() as session:
            self.agency = session.get(Batch, batch_id).agency
        self.orders, self.now = (
            [o for o in list_orders(store) if o.lifted_at is None],
            datetime.now(UTC),
        )

    def code(self, statute: str) -> str:
        held = order_holding(self.orders, self.agency, statute, self.now)
        return (held[0] if held else ReasonCode.HELD_BY_COURT_ORDER).value


def current_outcomes(store: Store, batch_ids: list[int], size: int) -> dict[int, dict[str, int]]:
    """Per batch, how many requests stand at each outcome now (what the batch page counts)."""
    query = (
        standing((DecisionRecord.batch_id, NOW, func.count()), size)
        .where(DecisionRecord.batch_id.in_(batch_ids))
        .group_by(DecisionRecord.batch_id, NOW)
    )
    counts: dict[int, dict[str, int]] = {}
    with store.session() as session:
        for batch_id, outcome, n in session.execute(query):
            counts.setdefault(batch_id, {})[outcome] = n
    return counts


def later_answers(store: Store, batch_ids: list[int], size: int) -> dict[int, int]:
    """Per batch, how many requests were answered after the batch was decided (reviews, holds)."""
    query = (
        standing((DecisionRecord.batch_id, func.count()), size)
        .where(DecisionRecord.batch_id.in_(batch_ids), CHANGED_BY.is_not(None))
        .group_by(DecisionRecord.batch_id)
    )
    with store.session() as session:
        return dict(session.execute(query).all())


def as_csv(rows: Iterator[dict], lines: int = 2_000) -> Iterator[str]:
    """The rows as CSV text (header first, spreadsheet-safe), a few thousand lines at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CURRENT_COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow([spreadsheet_safe(row[c]) for c in CURRENT_COLUMNS])
        if n % lines == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def as_jsonl(rows: Iterator[dict], lines: int = 2_000) -> Iterator[str]:
    out: list[str] = []
    for row in rows:
        out.append(json.dumps(row, ensure_ascii=False) + "\n")
        if len(out) == lines:
            yield "".join(out)
            out.clear()
    yield "".join(out)


__all__ = [
    "CHANGED_BY",
    "CURRENT_COLUMNS",
    "NOW",
    "REQUESTER_CODES",
    "standing",
    "as_csv",
    "as_jsonl",
    "checkpoint_size",
    "current_outcomes",
    "current_rows",
    "later_answers",
]
