"""Court orders and agreement terms as data (DESIGN.md "Court orders"). They hold, never refuse.

    {"kind": "stay", "court": "D.D.C.", "docket": "1:25-cv-00457", "issued": "2025-11-21",
     "effective_from": "2025-11-21", "effective_to": null, "hours": null,
     "scope": {"agency": "DHS-ICE", "statutes": []}, "notify": ["court", "plaintiffs"]}

- `stay`: every matching disclosure is held (HELD_BY_COURT_ORDER) while the order is in force.
- `notice_before_transfer`: a matching disclosure waits until notice to `notify` has run `hours`
  (NOTICE_PERIOD).
- `notice_on_receipt`: notice is due within `hours` of receiving a matching batch.
- `use_bar`: the recipient may not use what it received; recorded and noticed.
An empty `statutes` list means all. Adding and lifting an order are ledgered with the order's text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from taxgate.domain import ReasonCode
from taxgate.ledger import Ledger, canonical
from taxgate.normalize.statute import parse_citation
from taxgate.store import Store
from taxgate.store.models import Order as OrderRow

KINDS = ("stay", "notice_before_transfer", "notice_on_receipt", "use_bar")
HOLDING = {"stay": ReasonCode.HELD_BY_COURT_ORDER, "notice_before_transfer": ReasonCode.NOTICE_PERIOD}


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

    def in_force(self, on: date) -> bool:
        return (self.lifted_at is None or self.lifted_at.date() > on) and self.effective_from <= on and (
            self.effective_to is None or on <= self.effective_to)

    def covers_agency(self, agency: str) -> bool:
        return not self.agency or self.agency == agency

    def covers(self, agency: str, statute: str) -> bool:
        """Does the order reach a request by `agency` under `statute`? (An empty list: every statute.)"""
        if not self.covers_agency(agency):
            return False
        if not self.statutes:
            return True
        cited = parse_citation(statute)
        return cited is not None and any(cited.within(parse_citation(s)) for s in self.statutes if parse_citation(s))


def _date(raw: dict, key: str, required: bool) -> date | None:
    value = raw.get(key)
    if value in (None, ""):
        if required:
            raise OrderError(f"order lacks {key!r} (a date, YYYY-MM-DD)")
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise OrderError(f"order {key!r} is not a date (YYYY-MM-DD): {value!r}") from None


def parse_order(raw: object) -> dict:
    """Validate an order as given (JSON object); returns it normalised, ready to store and ledger."""
    if not isinstance(raw, dict):
        raise OrderError("an order is a JSON object")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise OrderError(f"order kind must be one of {', '.join(KINDS)}, not {kind!r}")
    for key in ("court", "docket"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise OrderError(f"order lacks {key!r}")
    start, end = _date(raw, "effective_from", True), _date(raw, "effective_to", False)
    _date(raw, "issued", False)
    if end is not None and end < start:
        raise OrderError("order 'effective_to' is before 'effective_from'")
    hours = raw.get("hours")
    if kind in ("notice_before_transfer", "notice_on_receipt"):
        if not isinstance(hours, int) or isinstance(hours, bool) or hours <= 0:
            raise OrderError(f"a {kind} order needs 'hours', a positive whole number")
    elif hours not in (None, 0):
        raise OrderError(f"a {kind} order takes no 'hours'")
    scope = raw.get("scope") or {}
    if not isinstance(scope, dict):
        raise OrderError("order 'scope' is an object: {\"agency\": ..., \"statutes\": [...]}")
    statutes = scope.get("statutes") or []
    if not isinstance(statutes, list) or not all(isinstance(s, str) for s in statutes):
        raise OrderError("order scope 'statutes' is a list of citations")
    unread = [s for s in statutes if parse_citation(s) is None]
    if unread:
        raise OrderError(f"order scope cites what cannot be read as a statute: {unread[0]!r}")
    notify = raw.get("notify") or []
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        raise OrderError("order 'notify' is a list of names")
    return {
        "kind": kind, "court": raw["court"].strip(), "docket": raw["docket"].strip(),
        "issued": raw.get("issued") or "", "effective_from": start.isoformat(),
        "effective_to": end.isoformat() if end else None, "hours": hours or None,
        "scope": {"agency": str(scope.get("agency") or ""), "statutes": statutes}, "notify": notify,
    }


def _from_row(row: OrderRow) -> Order:
    body = json.loads(row.body)
    return Order(row.id, row.kind, row.court, row.docket, date.fromisoformat(row.effective_from),
                 date.fromisoformat(row.effective_to) if row.effective_to else None, body["hours"],
                 body["scope"]["agency"], tuple(body["scope"]["statutes"]), tuple(body["notify"]),
                 row.lifted_at, row.ledger_index)


def add_order(store: Store, raw: object, then: Callable[[Session, Ledger, Order], None] | None = None) -> Order:
    """Store and ledger an order; `then` runs in the same transaction (the notices it creates:
    `notices.add_order_with_notices`)."""
    order = parse_order(raw)
    ledger = Ledger(store)
    with store.session.begin() as session:
        (index,) = ledger.append(session, [{"kind": "order_added", "order": order,
                                            "at": datetime.now(UTC).isoformat(timespec="seconds")}])
        row = OrderRow(kind=order["kind"], court=order["court"], docket=order["docket"],
                       body=canonical(order).decode(), effective_from=order["effective_from"],
                       effective_to=order["effective_to"], ledger_index=index)
        session.add(row)
        session.flush()
        added = _from_row(row)
        if then is not None:
            then(session, ledger, added)
        return added


def lift_order(store: Store, order_id: int, at: datetime | None = None) -> Order:
    """Lift an order (ledgered). Lifting twice is refused: the first lift stands."""
    at = at or datetime.now(UTC)
    with store.session.begin() as session:
        row = session.get(OrderRow, order_id, with_for_update=True)
        if row is None:
            raise OrderError(f"no order {order_id}")
        if row.lifted_at is not None:
            raise OrderError(f"order {order_id} was lifted on {row.lifted_at.isoformat(timespec='seconds')}")
        Ledger(store).append(session, [{"kind": "order_lifted", "order_id": order_id, "order_entry": row.ledger_index,
                                        "at": at.isoformat(timespec="seconds")}])
        row.lifted_at = at
        session.flush()
        return _from_row(row)


def orders_in(session) -> list[Order]:
    return [_from_row(r) for r in session.execute(select(OrderRow).order_by(OrderRow.id)).scalars()]


def list_orders(store: Store) -> list[Order]:
    with store.session() as session:
        return orders_in(session)


def holding(orders: list[Order], agency: str, statute: str, now: datetime,
            notices_sent: Mapping[int, datetime] | None = None) -> tuple[ReasonCode, Order] | None:
    """The order in force at `now` that holds a disclosure to `agency` under `statute`, with its
    code; a stay comes first. A notice_before_transfer holds until the pre-transfer notice for the
    batch (`notices_sent`: order id -> when sent) has run its hours."""
    sent = notices_sent or {}
    found = [o for o in orders if o.kind in HOLDING and o.in_force(now.date()) and o.covers(agency, statute)]
    for order in found:
        if order.kind == "stay":
            return HOLDING["stay"], order
    for order in found:
        noticed = sent.get(order.id)
        if noticed is None or noticed + timedelta(hours=order.hours or 0) > now:
            return HOLDING["notice_before_transfer"], order
    return None
