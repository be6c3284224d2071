"""Notices owed under court orders, with due times; each one ledgered when it falls due and when sent.

- `court_receipt`: a `notice_on_receipt` order: notice to `notify` within `hours` of receiving a batch.
- `pre_transfer`: a `notice_before_transfer` order: notice to `notify` before anything of the batch
  leaves; the held items may leave `hours` after it was sent (`orders.holding`).
- `use_bar`: a `use_bar` order: notice to the recipient agency that it may not inspect, use, copy or
  rely on what it received, due when the order is added.
- `disposal_request`: an incident (`taxgate incidents open`): the recipient is asked to dispose of
  the disclosures found unlawful and to certify that it has.
- `taxpayer`: an incident: each taxpayer concerned is told the date of each disclosure and their
  rights under 26 U.S.C. § 7431.
One notice per kind, batch and order, or per kind, incident and taxpayer (unique constraints), so a
batch sent again, a run restarted or an incident opened twice owes nothing twice. An incident
closes when its disposal is certified and its last notice is sent (`close_incident_if_done`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taxgate.ledger import Ledger, canonical
from taxgate.orders import Order, add_order
from taxgate.store import Store
from taxgate.store.models import Batch, Decision as DecisionRow, Disclosure, Incident, Notice as NoticeRow


class NoticeError(ValueError):
    """A notice request that cannot be met; one line for the user."""


@dataclass(frozen=True)
class Notice:
    id: int
    kind: str
    recipient: str
    batch_id: int | None
    order_id: int | None
    incident_id: int | None
    due_at: datetime
    sent_at: datetime | None
    body: dict
    ledger_index: int

    def overdue(self, now: datetime) -> bool:
        return self.sent_at is None and self.due_at < now


def _from_row(row: NoticeRow) -> Notice:
    return Notice(row.id, row.kind, row.recipient, row.batch_id, row.order_id, row.incident_id, row.due_at,
                  row.sent_at, json.loads(row.body), row.ledger_index)


def owe(session: Session, ledger: Ledger, kind: str, order: Order, batch_id: int | None, due_at: datetime,
        body: dict, recipient: str | None = None) -> None:
    """Record (and ledger) a notice owed under `order` (for a batch, or for the order itself when
    `batch_id` is None), unless it is already owed."""
    exists = session.execute(select(NoticeRow.id).where(
        NoticeRow.kind == kind, NoticeRow.order_id == order.id,
        NoticeRow.batch_id == batch_id if batch_id is not None else NoticeRow.batch_id.is_(None))).first()
    if exists:
        return
    recipient = recipient or ", ".join(order.notify) or order.court
    content = {"kind": kind, "recipient": recipient, "court": order.court, "docket": order.docket, **body}
    _record(session, ledger, content, due_at, {"order_entry": order.ledger_index},
            batch_id=batch_id, order_id=order.id)


def owe_for_incident(session: Session, ledger: Ledger, kind: str, incident: Incident, recipient: str, tin: str,
                     due_at: datetime, body: dict) -> None:
    """Record (and ledger) a notice owed because of an incident: the disposal request (tin "") or one
    taxpayer's notice."""
    content = {"kind": kind, "recipient": recipient, "incident": incident.id, **body}
    _record(session, ledger, content, due_at, {"incident_entry": incident.ledger_index},
            incident_id=incident.id, tin=tin)


def _record(session: Session, ledger: Ledger, content: dict, due_at: datetime, cause: dict, **link) -> None:
    (index,) = ledger.append(session, [{"kind": "notice_due", "notice": content, **cause,
                                        "due_at": due_at.isoformat(timespec="seconds")}])
    session.add(NoticeRow(kind=content["kind"], recipient=content["recipient"], due_at=due_at,
                          body=canonical(content).decode(), ledger_index=index, **link))
    session.flush()


def add_order_with_notices(store: Store, raw: object) -> Order:
    """Add an order (`orders.add_order`) and, in the same transaction, the notices it owes at once: a
    use bar is noticed to the recipient, with how many disclosures it has received."""

    def notices(session: Session, ledger: Ledger, order: Order) -> None:
        if order.kind != "use_bar":
            return
        query = (select(func.count(Disclosure.id)).join(DecisionRow, DecisionRow.id == Disclosure.decision_id)
                 .join(Batch, Batch.id == DecisionRow.batch_id))
        if order.agency:
            query = query.where(Batch.agency == order.agency)
        received = session.execute(query).scalar_one()
        owe(session, ledger, "use_bar", order, None, datetime.now(UTC),
            {"agency": order.agency or "every recipient agency", "disclosures_received": received,
             "effective_from": order.effective_from.isoformat()},
            recipient=order.agency or "every recipient agency")

    return add_order(store, raw, then=notices)


def close_incident_if_done(session: Session, ledger: Ledger, incident_id: int, at: datetime) -> bool:
    """Close an incident once its disposal is certified and every notice it owes is sent (ledgered)."""
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None or incident.closed_at is not None or incident.disposal_certified_at is None:
        return False
    unsent = session.execute(select(NoticeRow.id).where(
        NoticeRow.incident_id == incident_id, NoticeRow.sent_at.is_(None)).limit(1)).first()
    if unsent:
        return False
    ledger.append(session, [{"kind": "incident_closed", "incident_entry": incident.ledger_index,
                             "at": at.isoformat(timespec="seconds")}])
    incident.closed_at = at
    return True


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
    return {order_id: moment for order_id, moment in rows}


def mark_sent(store: Store, notice_ids: list[int], at: datetime | None = None) -> list[Notice]:
    """Record that notices were sent (ledgered), in one transaction; a notice is sent once. An
    incident whose last notice this was, and whose disposal is certified, closes."""
    at = at or datetime.now(UTC)
    ledger = Ledger(store)
    with store.session.begin() as session:
        rows = []
        for notice_id in notice_ids:
            row = session.get(NoticeRow, notice_id, with_for_update=True)
            if row is None:
                raise NoticeError(f"no notice {notice_id}")
            if row.sent_at is not None:
                raise NoticeError(f"notice {notice_id} was sent on {row.sent_at.isoformat(timespec='seconds')}")
            rows.append(row)
        ledger.append(session, [{"kind": "notice_sent", "notice_entry": row.ledger_index,
                                 "at": at.isoformat(timespec="seconds")} for row in rows])
        for row in rows:
            row.sent_at = at
        session.flush()
        for incident_id in sorted({r.incident_id for r in rows if r.incident_id}):
            close_incident_if_done(session, ledger, incident_id, at)
        return [_from_row(r) for r in rows]


def list_notices(store: Store, unsent_only: bool = False, incident_id: int | None = None,
                 kind: str | None = None, ids: list[int] | None = None) -> list[Notice]:
    with store.session() as session:
        query = select(NoticeRow).order_by(NoticeRow.due_at, NoticeRow.id)
        if unsent_only:
            query = query.where(NoticeRow.sent_at.is_(None))
        if incident_id is not None:
            query = query.where(NoticeRow.incident_id == incident_id)
        if kind is not None:
            query = query.where(NoticeRow.kind == kind)
        if ids is not None:
            query = query.where(NoticeRow.id.in_(ids))
        return [_from_row(r) for r in session.execute(query).scalars()]
