"""Notices owed under court orders, with due times; each one ledgered when it falls due and when sent.

- `court_receipt`: a `notice_on_receipt` order: notice to `notify` within `hours` of receiving a batch.
- `pre_transfer`: a `notice_before_transfer` order: notice to `notify` before anything of the batch
  leaves; the held items may leave `hours` after it was sent (`orders.holding`).
One notice per kind, batch and order (a unique constraint), so a batch sent again or a run restarted
owes nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from taxgate.ledger import Ledger, canonical
from taxgate.orders import Order
from taxgate.store import Store
from taxgate.store.models import Notice as NoticeRow

KINDS = {"court_receipt": "notice_on_receipt", "pre_transfer": "notice_before_transfer"}


class NoticeError(ValueError):
    """A notice request that cannot be met; one line for the user."""


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    recipient: str
    batch_id: int | None
    order_id: int | None
    due_at: datetime
    sent_at: datetime | None
    body: dict
    ledger_index: int

    def overdue(self, now: datetime) -> bool:
        return self.sent_at is None and _aware(self.due_at) < now


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _from_row(row: NoticeRow) -> Notice:
    return Notice(row.id, row.kind, row.recipient, row.batch_id, row.order_id, _aware(row.due_at),
                  _aware(row.sent_at) if row.sent_at else None, json.loads(row.body), row.ledger_index)


def owe(session: Session, ledger: Ledger, kind: str, order: Order, batch_id: int, due_at: datetime, body: dict) -> None:
    """Record (and ledger) a notice owed under `order` for a batch, unless it is already owed."""
    exists = session.execute(select(NoticeRow.id).where(
        NoticeRow.kind == kind, NoticeRow.batch_id == batch_id, NoticeRow.order_id == order.id)).first()
    if exists:
        return
    recipient = ", ".join(order.notify) or order.court
    content = {"kind": kind, "recipient": recipient, "court": order.court, "docket": order.docket, **body}
    (index,) = ledger.append(session, [{"kind": "notice_due", "notice": content, "order_entry": order.ledger_index,
                                        "due_at": due_at.isoformat(timespec="seconds")}])
    session.add(NoticeRow(kind=kind, recipient=recipient, batch_id=batch_id, order_id=order.id, due_at=due_at,
                          body=canonical(content).decode(), ledger_index=index))
    session.flush()


def owe_on_receipt(session: Session, ledger: Ledger, orders: list[Order], batch_id: int, agency: str,
                   received_at: datetime, body: dict) -> None:
    """Notices due because a batch was received (orders of kind notice_on_receipt in force)."""
    for order in orders:
        if order.kind == "notice_on_receipt" and order.in_force(received_at.date()) and order.covers_agency(agency):
            owe(session, ledger, "court_receipt", order, batch_id, received_at + timedelta(hours=order.hours or 0), body)


def sent_at(session: Session, kind: str, batch_id: int) -> dict[int, datetime]:
    """When the notices of `kind` for a batch were sent, by order id."""
    rows = session.execute(select(NoticeRow.order_id, NoticeRow.sent_at).where(
        NoticeRow.kind == kind, NoticeRow.batch_id == batch_id, NoticeRow.sent_at.is_not(None))).all()
    return {order_id: _aware(moment) for order_id, moment in rows}


def mark_sent(store: Store, notice_id: int, at: datetime | None = None) -> Notice:
    """Record that a notice was sent (ledgered); a notice is sent once."""
    at = at or datetime.now(UTC)
    with store.session.begin() as session:
        row = session.get(NoticeRow, notice_id, with_for_update=True)
        if row is None:
            raise NoticeError(f"no notice {notice_id}")
        if row.sent_at is not None:
            raise NoticeError(f"notice {notice_id} was sent on {_aware(row.sent_at).isoformat(timespec='seconds')}")
        Ledger(store).append(session, [{"kind": "notice_sent", "notice_entry": row.ledger_index,
                                        "at": at.isoformat(timespec="seconds")}])
        row.sent_at = at
        session.flush()
        return _from_row(row)


def list_notices(store: Store, unsent_only: bool = False) -> list[Notice]:
    with store.session() as session:
        query = select(NoticeRow).order_by(NoticeRow.due_at, NoticeRow.id)
        if unsent_only:
            query = query.where(NoticeRow.sent_at.is_(None))
        return [_from_row(r) for r in session.execute(query).scalars()]
