"""Court orders and agreement terms as data (docs/DESIGN.md "Court orders"). They hold, never refuse.

    {"kind": "stay", "court": "D.D.C.", "docket": "1:25-cv-00457", "issued": "2025-11-21",
     "effective_from": "2025-11-21", "effective_to": null, "hours": null,
     "scope": {"agency": "DHS-ICE", "statutes": []}, "notify": ["court", "plaintiffs"]}

- `stay`: every matching disclosure is held (HELD_BY_COURT_ORDER) while the order is in force.
- `notice_before_transfer`: a matching disclosure waits until notice to `notify` has run `hours`
  (NOTICE_PERIOD).
- `notice_on_receipt`: notice is due within `hours` of receiving a matching batch.
- `use_bar`: the recipient may not use what it received; recorded and noticed.
An empty `statutes` list means all. Adding and lifting an order are ledgered with the order's text,
and the orders that hold a release are read from those entries (`orders_in`): an order edited or
deleted in its table holds or releases nothing by itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from taxgate.domain import ReasonCode
from taxgate.ledger import (
    Binding,
    Field,
    Ledger,
    TamperedError,
    at,
    canonical,
    checked_row,
    moment,
    sign_checkpoint,
)
from taxgate.ledger.log import loads, raw
from taxgate.ledger.signing import entries_of_kinds
from taxgate.normalize.statute import parse_citation
from taxgate.store import Store
from taxgate.store.models import OrderRecord

FIELDS = {
    "kind",
    "court",
    "docket",
    "issued",
    "effective_from",
    "effective_to",
    "hours",
    "scope",
    "notify",
}
MAX_HOURS = (
    24 * 366 * 10
)  # a notice period longer than ten years is a typing error, and would overflow dates
EARLIEST, LATEST = date(1900, 1, 1), date(2200, 12, 31)
KINDS = ("stay", "notice_before_transfer", "notice_on_receipt", "use_bar")
HOLDING = {
    "stay": ReasonCode.HELD_BY_COURT_ORDER,
    "notice_before_transfer": ReasonCode.NOTICE_PERIOD,
}


class OrderError(ValueError):
    """An order that cannot be taken as given; the message is the one line the user sees."""


@dataclass(frozen=True)
class Order:
    id: int
    kind: str
    court: str
    docket: str
    effective_from: date
    effective_to: date | None
    hours: int | None
    agency: str
    statutes: tuple[str, ...]
    notify: tuple[str, ...]
    lifted_at: datetime | None
    ledger_index: int
    added_at: datetime | None = (
        None  # when it was recorded here (an order may be in force from before)
    )

    def after(self, moment: datetime) -> datetime:
        """`moment` plus the order's hours. An order ledgered before hours were bounded may run past
        the calendar: it then runs for ever (holding longer is the safe reading, never shorter)."""
        try:
            return moment + timedelta(hours=self.hours or 0)
        except OverflowError:
            return datetime(9999, 12, 31, tzinfo=UTC)

    def in_force(self, on: date) -> bool:
        return (
            (self.lifted_at is None or self.lifted_at.date() > on)
            and self.effective_from <= on
            and (self.effective_to is None or on <= self.effective_to)
        )

    def covers_agency(self, agency: str) -> bool:
        return not self.agency or self.agency == agency

    def covers(self, agency: str, statute: str) -> bool:
        """Does the order reach a request by `agency` under `statute`? (An empty list: every statute.)"""
        if not self.covers_agency(agency):
            return False
        if not self.statutes:
            return True
        cited = parse_citation(statute)
        return cited is not None and any(
            cited.within(parse_citation(s)) for s in self.statutes if parse_citation(s)
        )


def _date(raw: dict, key: str, required: bool) -> date | None:
    value = raw.get(key)
    if value in (None, ""):
        if required:
            raise OrderError(f"order lacks {key!r} (a date, YYYY-MM-DD)")
        return None
    try:
        # Text in the one form an order writes, YYYY-MM-DD: not a number (20251121.0, which
        # Python's fromisoformat reads as a date) and not the basic form (20251121).
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise OrderError(f"order {key!r} is not a date (YYYY-MM-DD): {str(value)[:40]!r}") from None
    if not EARLIEST <= day <= LATEST:
        raise OrderError(
            f"order {key!r} is {day.isoformat()}: a date between {EARLIEST.year} and {LATEST.year}"
        )
    return day


def parse_order(given: object, agencies: Collection[str] | None = None) -> dict:
    """Validate an order as given (JSON object); returns it normalised, ready to store and ledger.
    `agencies`: the requesting agencies the policy knows; an order scoped to any other would match
    nothing ("DHS ICE" for DHS-ICE) and is refused."""
    if not isinstance(given, dict):
        raise OrderError("an order is a JSON object")
    kind = given.get("kind")
    if kind not in KINDS:
        raise OrderError(f"order kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}")
    unknown = sorted(set(given) - FIELDS)
    if unknown:
        raise OrderError(f"order has a field taxgate does not know: {unknown[0][:40]!r}")
    for key in ("court", "docket"):
        if not isinstance(given.get(key), str) or not given[key].strip():
            raise OrderError(f"order lacks {key!r}")
        if len(given[key]) > 200:
            raise OrderError(f"order {key!r} is longer than 200 characters")
    start, end = _date(given, "effective_from", True), _date(given, "effective_to", False)
    _date(given, "issued", False)
    if end is not None and end < start:
        raise OrderError("order 'effective_to' is before 'effective_from'")
    hours = given.get("hours")
    if kind in ("notice_before_transfer", "notice_on_receipt"):
        if not isinstance(hours, int) or isinstance(hours, bool) or not 0 < hours <= MAX_HOURS:
            raise OrderError(
                f"a {kind} order needs 'hours', a whole number from 1 to {MAX_HOURS:,} (ten years)"
            )
    elif hours not in (None, 0):
        raise OrderError(f"a {kind} order takes no 'hours'")
    scope = given.get("scope") or {}
    if not isinstance(scope, dict):
        raise OrderError('order \'scope\' is an object: {"agency": ..., "statutes": [...]}')
    agency = scope.get("agency") or ""
    if not isinstance(agency, str) or len(agency) > 64:
        raise OrderError("order scope 'agency' is an agency's code (at most 64 characters)")
    if agencies is not None and agency.strip() and agency.strip() not in agencies:
        raise OrderError(
            f"order scope 'agency' {agency.strip()[:64]!r} is not an agency the policy knows: "
            f"{', '.join(sorted(agencies)) or 'none'} (empty: every agency)"
        )
    statutes = scope.get("statutes") or []
    if (
        not isinstance(statutes, list)
        or not all(isinstance(s, str) and len(s) <= 200 for s in statutes)
        or len(statutes) > 100
    ):
        raise OrderError("order scope 'statutes' is a list of at most 100 citations")
    unread = [s for s in statutes if parse_citation(s) is None]
    if unread:
        raise OrderError(f"order scope cites what cannot be read as a statute: {unread[0]!r}")
    notify = given.get("notify") or []
    if (
        not isinstance(notify, list)
        or not all(isinstance(n, str) and 0 < len(n) <= 200 for n in notify)
        or len(notify) > 50
    ):
        raise OrderError("order 'notify' is a list of at most 50 names")
    return {
        "kind": kind,
        "court": given["court"].strip(),
        "docket": given["docket"].strip(),
        "issued": given.get("issued") or "",
        "effective_from": start.isoformat(),
        "effective_to": end.isoformat() if end else None,
        "hours": hours or None,
        "scope": {"agency": agency.strip(), "statutes": statutes},
        "notify": notify,
    }


def _order(order_id: int, body: dict, lifted_at: datetime | None, ledger_index: int) -> Order:
    return Order(
        order_id,
        body["kind"],
        body["court"],
        body["docket"],
        date.fromisoformat(body["effective_from"]),
        date.fromisoformat(body["effective_to"]) if body["effective_to"] else None,
        body["hours"],
        body["scope"]["agency"],
        tuple(body["scope"]["statutes"]),
        tuple(body["notify"]),
        lifted_at,
        ledger_index,
    )


def _from_row(row: OrderRecord) -> Order:
    try:
        body = loads(row.body)
        return replace(_order(row.id, body, row.lifted_at, row.ledger_index), added_at=row.added_at)
    except (ValueError, KeyError, TypeError):
        raise TamperedError(f"orders row {row.id} holds no order taxgate wrote") from None


def order_entry(row: dict) -> dict:
    """The entry of an order added: its id and the order as given (normalised)."""
    return {
        "kind": "order_added",
        "id": row["id"],
        "order": loads(row["body"]),
        "at": at(row["added_at"]),
    }


def _columns_agree(row: dict) -> str | None:
    """The row's columns are copies of its order's fields: they must say the same."""
    body = loads(row["body"])
    differ = [
        c
        for c in ("kind", "court", "docket", "effective_from", "effective_to")
        if body.get(c) != row[c]
    ]
    return f"its {', '.join(differ)} column(s) differ from the order it records" if differ else None


def lift_entry(row: dict) -> dict:
    """The lift, with who lifted it, on what authority and why (by its SHA-256), when recorded (lifts
    recorded before the store kept them have none)."""
    said = (
        {
            "by": row["lifted_by"],
            "authority": row["lifted_authority"],
            "reason_sha256": hashlib.sha256(row["lifted_reason"].encode()).hexdigest(),
        }
        if row.get("lifted_by")
        else {}
    )
    return {
        "kind": "order_lifted",
        "order_id": row["id"],
        "order_entry": row["ledger_index"],
        "at": at(row["lifted_at"]),
        **said,
    }


ORDER_ADDED = Binding(
    kind="order_added",
    table="orders",
    index=OrderRecord.ledger_index,
    key=OrderRecord.id,
    fields=(
        Field("id", OrderRecord.id, "int"),
        Field("kind", OrderRecord.kind),
        Field("court", OrderRecord.court),
        Field("docket", OrderRecord.docket),
        Field("body", OrderRecord.body),
        Field("effective_from", OrderRecord.effective_from),
        Field("effective_to", OrderRecord.effective_to, "str?"),
        Field("added_at", OrderRecord.added_at, "moment?"),
    ),
    entry=lambda row, _: order_entry(row),
    describe=lambda row: f"{row['kind']}, {row['court']} {row['docket']}",
    check=_columns_agree,
)
ORDER_LIFTED = Binding(
    kind="order_lifted",
    table="orders",
    index=OrderRecord.lifted_index,
    key=OrderRecord.id,
    fields=(
        Field("id", OrderRecord.id, "int"),
        Field("ledger_index", OrderRecord.ledger_index, "int"),
        Field("lifted_at", OrderRecord.lifted_at, "moment?"),
        Field("lifted_by", OrderRecord.lifted_by),
        Field("lifted_authority", OrderRecord.lifted_authority),
        Field("lifted_reason", OrderRecord.lifted_reason),
    ),
    entry=lambda row, _: lift_entry(row),
    present=OrderRecord.lifted_index.is_not(None) | OrderRecord.lifted_at.is_not(None),
)
BINDINGS = (ORDER_ADDED, ORDER_LIFTED)


def add_order(
    store: Store,
    given: object,
    then: Callable[[Session, Ledger, Order], None] | None = None,
    agencies: Collection[str] | None = None,
) -> Order:
    """Store and ledger an order; `then` runs in the same transaction (the notices it creates:
    `notices.add_order_with_notices`)."""
    order = parse_order(given, agencies)
    ledger = Ledger(store)
    now = datetime.now(UTC)
    with store.session.begin() as session:
        index = ledger.next_index(session)  # the head stays locked: the entry will be this one
        row = OrderRecord(
            kind=order["kind"],
            court=order["court"],
            docket=order["docket"],
            body=canonical(order).decode(),
            effective_from=order["effective_from"],
            effective_to=order["effective_to"],
            added_at=now,
            ledger_index=index,
        )
        session.add(row)
        session.flush()  # its id, which the entry records
        ledger.append(session, [order_entry({"id": row.id, "body": row.body, "added_at": now})])
        added = _from_row(row)
        if then is not None:
            then(session, ledger, added)
    sign_checkpoint(
        store
    )  # an order holds releases: it is signed at once, before anyone relies on it
    return added


MIN_REASON = 10


def lift_order(
    store: Store,
    order_id: int,
    when: datetime | None = None,
    *,
    by: str,
    authority: str,
    reason: str,
) -> Order:
    """Lift an order (ledgered), saying who lifts it (`by`), on what authority (the court's order
    that ends it: its docket entry or date) and why. Lifting is final: what the order alone held is
    released once, and cannot be held again by it. Lifting twice is refused: the first lift stands."""
    when = when or datetime.now(UTC)
    by, authority, reason = by.strip(), authority.strip(), reason.strip()
    if not by or len(by) > 200:
        raise OrderError("say who lifts the order (at most 200 characters)")
    if not authority or len(authority) > 200:
        raise OrderError(
            "say on what authority the order is lifted: the court's order ending it (docket entry, "
            "date), at most 200 characters"
        )
    if not MIN_REASON <= len(reason) <= 4000:
        raise OrderError(
            f"say why the order is lifted (at least {MIN_REASON} characters, at most 4,000)"
        )
    with store.session.begin() as session:
        row = session.get(OrderRecord, order_id, with_for_update=True)
        if row is None:
            raise OrderError(f"no order {order_id}")
        if row.lifted_at is not None:
            raise OrderError(
                f"order {order_id} was lifted on {row.lifted_at.isoformat(timespec='seconds')}"
            )
        (index,) = Ledger(store).append(
            session,
            [
                lift_entry(
                    {
                        "id": order_id,
                        "ledger_index": row.ledger_index,
                        "lifted_at": when,
                        "lifted_by": by,
                        "lifted_authority": authority,
                        "lifted_reason": reason,
                    }
                )
            ],
        )
        row.lifted_at, row.lifted_index = when, index
        row.lifted_by, row.lifted_authority, row.lifted_reason = by, authority, reason
        session.flush()
        lifted = _from_row(row)
    sign_checkpoint(store)
    return lifted


def orders_in(session: Session) -> list[Order]:
    """Every order as the ledger records it (its `order_added` entry, lifted by its `order_lifted`
    entry), each row checked against its entries: TamperedError if an order's row was edited,
    deleted, or has no entry, so that what holds a release is what the ledger says."""
    added, lifts = {}, {}
    for index, entry in entries_of_kinds(session, ("order_added", "order_lifted")):
        if entry["kind"] == "order_added":
            added[index] = entry
        else:
            lifts[entry.get("order_entry")] = (index, entry)
    rows = {
        index: (order_id, lifted_index, lifted_at)
        for order_id, index, lifted_index, lifted_at in session.execute(
            select(
                OrderRecord.id,
                raw(OrderRecord.ledger_index),
                raw(OrderRecord.lifted_index),
                raw(OrderRecord.lifted_at),
            )
        )
    }
    for index in sorted(set(added) - set(rows)):
        raise TamperedError(f"ledger entry {index} (order_added) has no row in orders")
    for index in sorted(set(rows) - set(added)):
        raise TamperedError(
            f"orders row {rows[index][0]} names ledger entry {index!r}, which is no order_added entry"
        )
    connection = session.connection()
    orders = []
    for index, entry in added.items():
        order_id, lifted_index, lifted_at = rows[index]
        checked_row(connection, ORDER_ADDED, order_id)
        lift = lifts.get(index)
        if lift is not None:
            checked_row(connection, ORDER_LIFTED, order_id)
        elif lifted_index is not None or lifted_at is not None:
            raise TamperedError(
                f"orders row {order_id} is marked lifted, but no ledger entry lifts it"
            )
        orders.append(
            _order(order_id, entry["order"], moment(lift[1]["at"]) if lift else None, index)
        )
    return sorted(orders, key=lambda o: o.id)


def list_orders(store: Store) -> list[Order]:
    """The orders as their rows say (for listing; what holds a release is `orders_in`'s)."""
    with store.session() as session:
        return [
            _from_row(r)
            for r in session.execute(select(OrderRecord).order_by(OrderRecord.id)).scalars()
        ]


def order_holding(
    orders: list[Order],
    agency: str,
    statute: str,
    now: datetime,
    notices_sent: Mapping[int, datetime] | None = None,
) -> tuple[ReasonCode, Order] | None:
    """The order in force at `now` that holds a disclosure to `agency` under `statute`, with its
    code; a stay comes first. A notice_before_transfer holds until the pre-transfer notice for the
    batch (`notices_sent`: order id -> when sent) has run its hours."""
    sent = notices_sent or {}
    found = [
        o
        for o in orders
        if o.kind in HOLDING and o.in_force(now.date()) and o.covers(agency, statute)
    ]
    for order in found:
        if order.kind == "stay":
            return HOLDING["stay"], order
    for order in found:
        noticed = sent.get(order.id)
        if noticed is None or order.after(noticed) > now:
            return HOLDING["notice_before_transfer"], order
    return None
