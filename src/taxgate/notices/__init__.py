"""Notices owed under court orders, with due times; each one ledgered when it falls due and when sent.

- `court_receipt`: a `notice_on_receipt` order: notice to `notify` within `hours` of receiving a batch.
- `pre_transfer`: a `notice_before_transfer` order: notice to `notify` before anything of the batch
  leaves; the held items may leave `hours` after it was sent (`orders.order_holding`).
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

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from taxgate.ledger import Binding, Field, Ledger, at, canonical, checked_row
from taxgate.orders import Order, add_order
from taxgate.store import Store
from taxgate.store.models import (
    Batch,
    DecisionRecord,
    Disclosure,
    Incident,
    NoticeRecord,
    OrderRecord,
)

NOTICE_KINDS = ("court_receipt", "pre_transfer", "use_bar", "disposal_request", "taxpayer")


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
    tin: str = ""  # a taxpayer notice's taxpayer

    def overdue(self, now: datetime) -> bool:
        return self.sent_at is None and self.due_at < now


def _from_row(row: NoticeRecord) -> Notice:
    return Notice(
        row.id,
        row.kind,
        row.recipient,
        row.batch_id,
        row.order_id,
        row.incident_id,
        row.due_at,
        row.sent_at,
        json.loads(row.body),
        row.ledger_index,
        row.tin,
    )


def owe_notice(
    session: Session,
    ledger: Ledger,
    kind: str,
    order: Order,
    batch_id: int | None,
    due_at: datetime,
    body: dict,
    recipient: str | None = None,
) -> None:
    """Record (and ledger) a notice owed under `order` (for a batch, or for the order itself when
    `batch_id` is None), unless it is already owed."""
    exists = session.execute(
        select(NoticeRecord.id).where(
            NoticeRecord.kind == kind,
            NoticeRecord.order_id == order.id,
            NoticeRecord.batch_id == batch_id
            if batch_id is not None
            else NoticeRecord.batch_id.is_(None),
        )
    ).first()
    if exists:
        return
    recipient = recipient or ", ".join(order.notify) or order.court
    content = {
        "kind": kind,
        "recipient": recipient,
        "court": order.court,
        "docket": order.docket,
        **body,
    }
    _record(
        session,
        ledger,
        content,
        due_at,
        {"order_entry": order.ledger_index},
        batch_id=batch_id,
        order_id=order.id,
    )


def owe_for_incident(
    session: Session,
    ledger: Ledger,
    kind: str,
    incident: Incident,
    recipient: str,
    tin: str,
    due_at: datetime,
    body: dict,
) -> None:
    """Record (and ledger) a notice owed because of an incident: the disposal request (tin "") or one
    taxpayer's notice."""
    content = {"kind": kind, "recipient": recipient, "incident": incident.id, **body}
    _record(
        session,
        ledger,
        content,
        due_at,
        {"incident_entry": incident.ledger_index},
        incident_id=incident.id,
        tin=tin,
    )


def due_entry(row: dict) -> dict:
    """The entry of a notice owed: its kind and recipient, what it says (by the SHA-256 of its
    text: a disposal request lists every disclosure), why it is owed (the order's or incident's
    entry), for which batch and taxpayer, and when it is due."""
    return {
        "kind": "notice_due",
        "notice": row["kind"],
        "recipient": row["recipient"],
        "body_sha256": hashlib.sha256(row["body"].encode()).hexdigest(),
        "order_entry": row["order_entry"],
        "incident_entry": row["incident_entry"],
        "batch": row["batch_id"],
        "tin": row["tin"],
        "due_at": at(row["due_at"]),
    }


def sent_entry(row: dict) -> dict:
    return {"kind": "notice_sent", "notice_entry": row["ledger_index"], "at": at(row["sent_at"])}


def closed_entry(row: dict) -> dict:
    return {
        "kind": "incident_closed",
        "incident_entry": row["ledger_index"],
        "at": at(row["closed_at"]),
    }


NOTICE_DUE = Binding(
    kind="notice_due",
    table="notices",
    index=NoticeRecord.ledger_index,
    key=NoticeRecord.id,
    source=NoticeRecord.__table__.outerjoin(
        OrderRecord.__table__, OrderRecord.id == NoticeRecord.order_id
    ).outerjoin(Incident.__table__, Incident.id == NoticeRecord.incident_id),
    fields=(
        Field("kind", NoticeRecord.kind),
        Field("recipient", NoticeRecord.recipient),
        Field("body", NoticeRecord.body),
        Field("order_entry", OrderRecord.ledger_index, "int?"),
        Field("incident_entry", Incident.ledger_index, "int?"),
        Field("batch_id", NoticeRecord.batch_id, "int?"),
        Field("tin", NoticeRecord.tin),
        Field("due_at", NoticeRecord.due_at, "moment"),
    ),
    entry=lambda row, _: due_entry(row),
    describe=lambda row: f"{row['kind']} to {row['recipient']}",
)
NOTICE_SENT = Binding(
    kind="notice_sent",
    table="notices",
    index=NoticeRecord.sent_index,
    key=NoticeRecord.id,
    fields=(
        Field("ledger_index", NoticeRecord.ledger_index, "int"),
        Field("sent_at", NoticeRecord.sent_at, "moment?"),
    ),
    entry=lambda row, _: sent_entry(row),
    present=NoticeRecord.sent_index.is_not(None) | NoticeRecord.sent_at.is_not(None),
)
INCIDENT_CLOSED = Binding(
    kind="incident_closed",
    table="incidents",
    index=Incident.closed_index,
    key=Incident.id,
    fields=(
        Field("ledger_index", Incident.ledger_index, "int"),
        Field("closed_at", Incident.closed_at, "moment?"),
    ),
    entry=lambda row, _: closed_entry(row),
    present=Incident.closed_index.is_not(None) | Incident.closed_at.is_not(None),
)
BINDINGS = (NOTICE_DUE, NOTICE_SENT, INCIDENT_CLOSED)


def _record(
    session: Session, ledger: Ledger, content: dict, due_at: datetime, cause: dict, **link
) -> None:
    body = canonical(content).decode()
    (index,) = ledger.append(
        session,
        [
            due_entry(
                {
                    "kind": content["kind"],
                    "recipient": content["recipient"],
                    "body": body,
                    "due_at": due_at,
                    "order_entry": cause.get("order_entry"),
                    "incident_entry": cause.get("incident_entry"),
                    "batch_id": link.get("batch_id"),
                    "tin": link.get("tin", ""),
                }
            )
        ],
    )
    session.add(
        NoticeRecord(
            kind=content["kind"],
            recipient=content["recipient"],
            due_at=due_at,
            body=body,
            ledger_index=index,
            **link,
        )
    )
    session.flush()


def add_order_with_notices(
    store: Store, raw: object, agencies: Collection[str] | None = None
) -> Order:
    """Add an order (`orders.add_order`; scoped only to an agency in `agencies`, when given) and, in
    the same transaction, the notices it owes at once: a use bar is noticed to the recipient, with
    how many disclosures it has received."""

    def notices(session: Session, ledger: Ledger, order: Order) -> None:
        if order.kind != "use_bar":
            return
        query = (
            select(func.count(Disclosure.id))
            .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
            .join(Batch, Batch.id == DecisionRecord.batch_id)
        )
        if order.agency:
            query = query.where(Batch.agency == order.agency)
        received = session.execute(query).scalar_one()
        owe_notice(
            session,
            ledger,
            "use_bar",
            order,
            None,
            datetime.now(UTC),
            {
                "agency": order.agency or "every recipient agency",
                "disclosures_received": received,
                "effective_from": order.effective_from.isoformat(),
            },
            recipient=order.agency or "every recipient agency",
        )

    return add_order(store, raw, then=notices, agencies=agencies)


def close_incident_if_done(
    session: Session, ledger: Ledger, incident_id: int, when: datetime
) -> bool:
    """Close an incident once its disposal is certified and every notice it owes is sent (ledgered)."""
    incident = session.get(Incident, incident_id, with_for_update=True)
    if incident is None or incident.closed_at is not None or incident.disposal_certified_at is None:
        return False
    unsent = session.execute(
        select(NoticeRecord.id)
        .where(NoticeRecord.incident_id == incident_id, NoticeRecord.sent_at.is_(None))
        .limit(1)
    ).first()
    if unsent:
        return False
    (index,) = ledger.append(
        session, [closed_entry({"ledger_index": incident.ledger_index, "closed_at": when})]
    )
    incident.closed_at, incident.closed_index = when, index
    return True


def owe_on_receipt(
    session: Session,
    ledger: Ledger,
    orders: list[Order],
    batch_id: int,
    agency: str,
    received_at: datetime,
    body: dict,
) -> None:
    """Notices due because a batch was received (orders of kind notice_on_receipt in force)."""
    for order in orders:
        if (
            order.kind == "notice_on_receipt"
            and order.in_force(received_at.date())
            and order.covers_agency(agency)
        ):
            owe_notice(
                session, ledger, "court_receipt", order, batch_id, order.after(received_at), body
            )


def sent_at(session: Session, kind: str, batch_id: int) -> dict[int, datetime]:
    """When the notices of `kind` for a batch were sent, by order id, each checked against its
    entries first (a sending time edited in the table releases nothing: TamperedError)."""
    rows = session.execute(
        select(NoticeRecord.id, NoticeRecord.order_id, NoticeRecord.sent_at).where(
            NoticeRecord.kind == kind,
            NoticeRecord.batch_id == batch_id,
            NoticeRecord.sent_at.is_not(None),
        )
    ).all()
    connection = session.connection()
    for notice_id, _, _ in rows:
        checked_row(connection, NOTICE_DUE, notice_id)
        checked_row(connection, NOTICE_SENT, notice_id)
    return {order_id: moment for _, order_id, moment in rows}


def mark_sent(store: Store, notice_ids: list[int], when: datetime | None = None) -> list[Notice]:
    """Record that notices were sent (ledgered), in one transaction; a notice is sent once. An
    incident whose last notice this was, and whose disposal is certified, closes."""
    when = when or datetime.now(UTC)
    ledger = Ledger(store)
    with store.session.begin() as session:
        rows = []
        for notice_id in notice_ids:
            row = session.get(NoticeRecord, notice_id, with_for_update=True)
            if row is None:
                raise NoticeError(f"no notice {notice_id}")
            if row.sent_at is not None:
                raise NoticeError(
                    f"notice {notice_id} was sent on {row.sent_at.isoformat(timespec='seconds')}"
                )
            rows.append(row)
        indexes = ledger.append(
            session,
            [sent_entry({"ledger_index": row.ledger_index, "sent_at": when}) for row in rows],
        )
        for row, index in zip(rows, indexes):
            row.sent_at, row.sent_index = when, index
        session.flush()
        for incident_id in sorted({r.incident_id for r in rows if r.incident_id}):
            close_incident_if_done(session, ledger, incident_id, when)
        return [_from_row(r) for r in rows]


def list_notices(
    store: Store,
    unsent_only: bool = False,
    incident_id: int | None = None,
    kind: str | None = None,
    ids: list[int] | None = None,
) -> list[Notice]:
    with store.session() as session:
        query = select(NoticeRecord).order_by(NoticeRecord.due_at, NoticeRecord.id)
        if unsent_only:
            query = query.where(NoticeRecord.sent_at.is_(None))
        if incident_id is not None:
            query = query.where(NoticeRecord.incident_id == incident_id)
        if kind is not None:
            query = query.where(NoticeRecord.kind == kind)
        if ids is not None:
            query = query.where(NoticeRecord.id.in_(ids))
        return [_from_row(r) for r in session.execute(query).scalars()]
