"""Release: what leaves, or is held, and the record of it in the store and the ledger.

Every path by which an item may leave goes through `Release`: a batch being recorded
(`release.batch`), a held item whose hold has ended (`release_held`, also run when an order is
lifted), and an officer's decision on a request in review (`review`). At the moment of release, in
the transaction that records it, an order in force (a stay, a notice period) holds the item
instead (§ 6103(i)(2) as the courts' orders limit it); the orders and notices consulted are those
the ledger records, checked before they are relied on. Whether anything may leave to an agency at
all today is `releasable` (§ 6103(p)(4)), said once here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from taxgate.domain import Outcome, ReasonCode
from taxgate.ledger import Ledger, checked_row, sign_checkpoint
from taxgate.notices import owe_notice, sent_at
from taxgate.orders import Order, list_orders, order_holding, orders_in
from taxgate.policy import Policy, PolicyError, load_policies, policy_in_force
from taxgate.release.entries import DECISIONS, DISCLOSABLE, HELD, disclosure_entry, held_entry
from taxgate.store import Store
from taxgate.store.bulk import insert_rows
from taxgate.store.models import Batch, DecisionRecord, Disclosure, HeldItem

__all__ = [
    "DISCLOSABLE",
    "Item",
    "Release",
    "lift_preview",
    "releasable",
    "release_held",
    "release_or_hold",
]


def releasable(policies: list[Policy], day: date) -> Callable[[str], bool]:
    """Whether anything may leave to an agency on `day` (26 U.S.C. § 6103(p)(4)): an agreement with
    it in force (it may have expired while an item was held) and its safeguards not found
    deficient, by the policy in force that day. No policy in force: nothing leaves."""
    try:
        policy = policy_in_force(policies, day)
    except PolicyError:
        return lambda agency: False

    def allowed(agency: str) -> bool:
        known = policy.agencies.get(agency)
        return (
            policy.agreement_for(agency, day) is not None
            and known is not None
            and not known.safeguards_deficient
        )

    return allowed


@dataclass(frozen=True)
class Item:
    """One item that would leave: the decision it answers, about whom, its value, to whom, under
    which statute; `held_id` if an order already holds it."""

    decision_id: int
    batch_id: int
    batch_ref: str
    row_number: int
    request_id: str
    tin: str
    value: str  # canonical JSON of the address
    agency: str
    statute: str
    held_id: int | None = None


class Release:
    """Release or hold, at one moment, inside the caller's transaction."""

    def __init__(self, session: Session, ledger: Ledger, now: datetime):
        self.session, self.ledger, self.now = session, ledger, now
        self.orders: list[Order] = orders_in(session)  # as the ledger records them
        self._noticed: dict[
            int, dict
        ] = {}  # batch id -> its pre-transfer notices, read once per batch

    def held_by(
        self, batch_id: int, batch_ref: str, agency: str, statute: str
    ) -> tuple[ReasonCode, Order] | None:
        """The order that holds an item of this batch now, with its code, or None. A notice
        before transfer that holds it is owed now (the transfer waits for it)."""
        if batch_id not in self._noticed:
            self._noticed[batch_id] = sent_at(self.session, "pre_transfer", batch_id)
        held = order_holding(self.orders, agency, statute, self.now, self._noticed[batch_id])
        if held is not None and held[1].kind == "notice_before_transfer":
            owe_notice(
                self.session,
                self.ledger,
                "pre_transfer",
                held[1],
                batch_id,
                self.now,
                {"batch_ref": batch_ref, "agency": agency, "hours": held[1].hours},
            )
        return held

    def record(self, items: Sequence[Item], held: Sequence[bool]) -> list[int | None]:
        """Record each item as released (a disclosure) or held (a held item), ledgered in one append;
        an item already held and still held records nothing. Returns each item's entry index."""
        recorded = [
            (i, item, hold)
            for i, (item, hold) in enumerate(zip(items, held))
            if not (hold and item.held_id is not None)
        ]
        entries = []
        for _, item, hold in recorded:
            fields = {
                "batch_id": item.batch_id,
                "row_number": item.row_number,
                "request_id": item.request_id,
                "tin": item.tin,
                "item": DISCLOSABLE,
                "value": item.value,
                "agency": item.agency,
                "statute": item.statute,
                "at": self.now,
            }
            entries.append(held_entry(fields) if hold else disclosure_entry(fields))
        indexes: list[int | None] = [None] * len(items)
        released, holds, was_held = [], [], []
        for (i, item, hold), index in zip(recorded, self.ledger.append(self.session, entries)):
            indexes[i] = index
            common = {
                "decision_id": item.decision_id,
                "tin": item.tin,
                "item": DISCLOSABLE,
                "value": item.value,
            }
            if hold:
                holds.append(
                    {
                        **common,
                        "agency": item.agency,
                        "statute": item.statute,
                        "ledger_index": index,
                    }
                )
            else:
                released.append({**common, "disclosed_at": self.now, "ledger_index": index})
                if item.held_id is not None:
                    was_held.append(item.held_id)
        if released:
            insert_rows(self.session.connection(), Disclosure.__table__, released)
        if was_held:
            self.session.execute(
                update(HeldItem).where(HeldItem.id.in_(was_held)).values(released_at=self.now)
            )
        if holds:
            insert_rows(self.session.connection(), HeldItem.__table__, holds)
        return indexes


def release_or_hold(
    session: Session,
    ledger: Ledger,
    items: Sequence[Item],
    now: datetime,
    allowed: Callable[[str], bool],
) -> list[tuple[Outcome, int | None, Order | None]]:
    """Release each item now unless an order holds it, or record nothing for it if its agency may
    not receive it today (`releasable`); returns, per item, DISCLOSED / HELD / NOT_DISCLOSED with its
    entry index and the order that holds it."""
    release = Release(session, ledger, now)
    lawful = [i for i, item in enumerate(items) if allowed(item.agency)]
    holds = {
        i: release.held_by(items[i].batch_id, items[i].batch_ref, items[i].agency, items[i].statute)
        for i in lawful
    }
    indexes = dict(
        zip(
            lawful,
            release.record([items[i] for i in lawful], [holds[i] is not None for i in lawful]),
        )
    )
    results = []
    for i in range(len(items)):
        if i not in holds:
            results.append((Outcome.NOT_DISCLOSED, None, None))
        elif holds[i] is not None:
            results.append((Outcome.HELD, indexes[i], holds[i][1]))
        else:
            results.append((Outcome.DISCLOSED, indexes[i], None))
    return results


def release_held(
    store: Store, now: datetime | None = None, policies: list[Policy] | None = None
) -> list[dict]:
    """Decide held items again: each one no order holds any more is released now, once (its
    disclosure ledgered like any other), provided the agency may receive it today (`releasable`).
    Each held item and its decision are checked against their entries before anything leaves.
    Returns what was released, for the requester's response."""
    ledger = Ledger(store)
    now = now or datetime.now(UTC)
    allowed = releasable(policies if policies is not None else load_policies(), now.date())
    with store.session.begin() as session:
        pending = session.execute(
            select(HeldItem.id, HeldItem.decision_id, Batch.id, Batch.batch_ref)
            .join(DecisionRecord, DecisionRecord.id == HeldItem.decision_id)
            .join(Batch, Batch.id == DecisionRecord.batch_id)
            .where(
                HeldItem.released_at.is_(None),
                ~select(Disclosure.id)
                .where(Disclosure.decision_id == HeldItem.decision_id)
                .exists(),
            )
            .order_by(HeldItem.id)
            .with_for_update(of=HeldItem)
        ).all()
        connection = session.connection()
        items = []
        for held_id, decision_id, batch_id, batch_ref in pending:
            row = checked_row(
                connection, HELD, held_id
            )  # what leaves is what the ledger says was held
            checked_row(connection, DECISIONS, decision_id)
            items.append(
                Item(
                    decision_id,
                    batch_id,
                    batch_ref,
                    row["row_number"],
                    row["request_id"],
                    row["tin"],
                    row["value"],
                    row["agency"],
                    row["statute"],
                    held_id,
                )
            )
        results = release_or_hold(session, ledger, items, now, allowed)
    released = [
        {
            "batch_ref": item.batch_ref,
            "request_id": item.request_id,
            "ledger_index": index,
            **{f"address_{k}": v for k, v in json.loads(item.value).items()},
        }
        for item, (outcome, index, _) in zip(items, results)
        if outcome is Outcome.DISCLOSED
    ]
    if (
        released
    ):  # what left is signed at once: the requester's response is current to a signed checkpoint
        sign_checkpoint(store)
    return released


def lift_preview(store: Store, order_id: int, now: datetime | None = None) -> tuple[int, int]:
    """What lifting an order would do, for the officer who confirms it: how many held items it
    covers, and how many of those no other order would hold (released at once, for good)."""
    now = now or datetime.now(UTC)
    orders = list_orders(store)
    order = next((o for o in orders if o.id == order_id), None)
    if order is None:
        return 0, 0
    others = [o for o in orders if o.id != order_id and o.lifted_at is None]
    with store.session() as session:
        pending = session.execute(
            select(HeldItem.agency, HeldItem.statute).where(
                HeldItem.released_at.is_(None),
                ~select(Disclosure.id)
                .where(Disclosure.decision_id == HeldItem.decision_id)
                .exists(),
            )
        ).all()
    covered = [(agency, statute) for agency, statute in pending if order.covers(agency, statute)]
    return len(covered), sum(
        1 for agency, statute in covered if order_holding(others, agency, statute, now) is None
    )
