"""Reports drawn from the store.

- `accounting(tin)`: § 6103(p)(3)(A), the permanent accounting: every request that named a taxpayer
  (by TIN) or was matched to them, and every disclosure of their information, with dates, agency,
  reasons and items.
- `jct(year)`: § 6103(p)(3)(C), the yearly report to the Joint Committee on Taxation, per agency: the
  requests received, the instances of disclosure, and the taxpayers whose information was disclosed.
"""

from __future__ import annotations

from sqlalchemy import distinct, extract, func, or_, select

from taxgate.normalize.text import digits
from taxgate.store import Store
from taxgate.store.models import Batch, Decision, Disclosure


def accounting(store: Store, tin: str) -> list[dict]:
    """One row per request about the taxpayer, oldest first: named by TIN, or matched to their record
    (whose master data was then consulted, even where nothing left); `disclosed_*` where something did."""
    tin = digits(tin)
    query = (
        select(Batch.received_at, Batch.agency, Batch.batch_ref, Decision.request_id, Decision.requested_tin,
               Decision.matched_tin, Decision.outcome, Decision.reasons, Decision.ledger_index,
               Disclosure.item, Disclosure.disclosed_at, Disclosure.ledger_index.label("disclosure_index"))
        .join(Batch, Batch.id == Decision.batch_id)
        .outerjoin(Disclosure, Disclosure.decision_id == Decision.id)
        .where(or_(Decision.requested_tin == tin, Decision.matched_tin == tin))
        .order_by(Batch.received_at, Decision.ledger_index)
    )
    with store.session() as session:
        rows = session.execute(query).all()
    return [
        {
            "received": r.received_at.date().isoformat(), "agency": r.agency, "batch": r.batch_ref,
            "request_id": r.request_id,
            "about": "requested and matched" if r.requested_tin == tin and r.matched_tin == tin
            else "requested" if r.requested_tin == tin else "matched",
            "outcome": r.outcome, "reasons": r.reasons,
            "disclosed_item": r.item or "", "disclosed": r.disclosed_at.date().isoformat() if r.disclosed_at else "",
            "ledger_index": r.disclosure_index if r.disclosure_index is not None else r.ledger_index,
        }
        for r in rows
    ]


def jct(store: Store, year: int) -> list[dict]:
    """Per agency for calendar year `year`: requests received, disclosures, taxpayers disclosed."""
    with store.session() as session:
        requests = dict(session.execute(
            select(Batch.agency, func.count(Decision.id)).join(Decision, Decision.batch_id == Batch.id)
            .where(extract("year", Batch.received_at) == year).group_by(Batch.agency)).all())
        disclosed = {agency: (instances, taxpayers) for agency, instances, taxpayers in session.execute(
            select(Batch.agency, func.count(Disclosure.id), func.count(distinct(Disclosure.tin)))
            .join(Decision, Decision.id == Disclosure.decision_id).join(Batch, Batch.id == Decision.batch_id)
            .where(extract("year", Disclosure.disclosed_at) == year).group_by(Batch.agency)).all()}
    return [
        {"agency": agency, "requests": requests.get(agency, 0),
         "disclosures": disclosed.get(agency, (0, 0))[0], "taxpayers_disclosed": disclosed.get(agency, (0, 0))[1]}
        for agency in sorted(set(requests) | set(disclosed))
    ]
