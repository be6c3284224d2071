"""Reports drawn from the store.

- `accounting(tin)`: § 6103(p)(3)(A), the permanent accounting: every request that named a taxpayer
  (by TIN) or was matched to them, and every disclosure of their information, with dates, agency,
  reasons and items.
- `jct(year)`: § 6103(p)(3)(C), the yearly report to the Joint Committee on Taxation, per agency: the
  requests received, the instances of disclosure, and the taxpayers whose information was disclosed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import distinct, extract, func, or_, select

from taxgate.normalize.text import digits
from taxgate.render import Document, Section
from taxgate.response.current import NOW, checkpoint_size, standing
from taxgate.rules import REPLAYED_VERSIONS
from taxgate.store import Store
from taxgate.store.models import Batch, DecisionRecord, Disclosure

ACCOUNTING_COLUMNS = (
    "received",
    "agency",
    "official",
    "case",
    "statute",
    "batch",
    "practice",
    "request_id",
    "about",
    "outcome",
    "reasons",
    "disclosed_item",
    "disclosed",
    "decision_ledger_index",
    "disclosure_ledger_index",
)


LAWFUL = "26 U.S.C. § 6103(i)(2)"


def accounting(store: Store, tin: str) -> list[dict]:
    """One row per request about the taxpayer, oldest first: named by TIN, or matched to their record
    (whose master data was then consulted, even where nothing left), as each stands at the latest
    signed checkpoint (a review decided or a hold released since counts). Each row says who asked
    (agency and officer), for what (case and the statute the request cites: the purpose), under which
    practice (a replay of the 2025 practice is the record of what that practice released, dated on
    its batch's date), what left and when, and the ledger entries to prove it."""
    tin = digits(tin)
    size = checkpoint_size(store)
    query = (
        standing(
            (
                Batch.received_at,
                Batch.agency,
                Batch.batch_ref,
                Batch.rule_set_version,
                Batch.as_of,
                DecisionRecord.request_id,
                DecisionRecord.requested_tin,
                DecisionRecord.matched_tin,
                DecisionRecord.official,
                DecisionRecord.case_number,
                DecisionRecord.statute,
                NOW,
                DecisionRecord.reasons,
                DecisionRecord.ledger_index,
                Disclosure.item,
                Disclosure.disclosed_at,
                Disclosure.ledger_index.label("disclosure_index"),
            ),
            size,
        )
        .join(Batch, Batch.id == DecisionRecord.batch_id)
        .where(or_(DecisionRecord.requested_tin == tin, DecisionRecord.matched_tin == tin))
        .order_by(Batch.received_at, DecisionRecord.ledger_index)
    )
    with store.session() as session:
        rows = session.execute(query).all()
    out = []
    for r in rows:
        replayed = r.rule_set_version in REPLAYED_VERSIONS
        out.append(
            {
                # a replay records a request of its batch's day (its date), replayed here later
                "received": r.as_of if replayed else r.received_at.date().isoformat(),
                "agency": r.agency,
                "official": r.official,
                "case": r.case_number,
                "statute": r.statute,
                "batch": r.batch_ref,
                "practice": "as practised in 2025 (replayed; held unlawful)"
                if replayed
                else LAWFUL,
                "request_id": r.request_id,
                "about": "requested and matched"
                if r.requested_tin == tin and r.matched_tin == tin
                else "requested"
                if r.requested_tin == tin
                else "matched",
                "outcome": r.now,
                "reasons": r.reasons,
                "disclosed_item": r.item or "",
                "disclosed": (r.as_of if replayed else r.disclosed_at.date().isoformat())
                if r.disclosed_at
                else "",
                "decision_ledger_index": r.ledger_index,
                "disclosure_ledger_index": r.disclosure_index
                if r.disclosure_index is not None
                else "",
            }
        )
    return out


def accounting_letter(rows: list[dict], tin: str, today: date | None = None) -> Document:
    """The accounting as a letter the taxpayer can read: every request about them, who made it and
    why, and what, if anything, was given; nothing of the gateway's own (codes, ledger entries)."""
    today = today or date.today()
    given = [r for r in rows if r["disclosed"]]
    lines = [
        (
            r["received"],
            r["agency"] + (f" ({r['official']})" if r["official"] else ""),
            " ".join(x for x in (r["statute"], f"case {r['case']}" if r["case"] else "") if x)
            or "not stated",
            (
                f"your last known address, on {r['disclosed']}"
                + (
                    "; a later review found that the law did not allow this"
                    if r["practice"] != LAWFUL
                    else ""
                )
            )
            if r["disclosed"]
            else "nothing",
        )
        for r in rows
    ]
    return Document(
        "Accounting of requests for your tax information",
        "Internal Revenue Service (synthetic demo)",
        [
            ("Date of this letter", today.strftime("%B %-d, %Y")),
            ("About", f"Your taxpayer identification number ending {digits(tin)[-4:]}"),
        ],
        [
            Section(
                "What this is",
                [
                    "The law requires us to keep an accounting of every request another agency made for your tax "
                    "information and of everything we gave (26 U.S.C. § 6103(p)(3)(A)). This is that accounting: "
                    f"{len(rows):,} request(s) named you or were matched to your record; in "
                    f"answer to {len(given):,} of "
                    "them we gave your last known address, and nothing else.",
                ],
            ),
            Section(
                "The requests", [], ("received", "from", "purpose stated", "what we gave"), lines
            )
            if rows
            else Section("The requests", ["No agency has asked us for your tax information."]),
        ],
        "From the Internal Revenue Service (synthetic demo).",
    )


def jct(store: Store, year: int) -> list[dict]:
    """Per agency for calendar year `year`: requests received, disclosures, taxpayers disclosed."""
    with store.session() as session:
        requests = dict(
            session.execute(
                select(Batch.agency, func.count(DecisionRecord.id))
                .join(DecisionRecord, DecisionRecord.batch_id == Batch.id)
                .where(extract("year", Batch.received_at) == year)
                .group_by(Batch.agency)
            ).all()
        )
        disclosed = {
            agency: (instances, taxpayers)
            for agency, instances, taxpayers in session.execute(
                select(
                    Batch.agency, func.count(Disclosure.id), func.count(distinct(Disclosure.tin))
                )
                .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
                .join(Batch, Batch.id == DecisionRecord.batch_id)
                .where(extract("year", Disclosure.disclosed_at) == year)
                .group_by(Batch.agency)
            ).all()
        }
    return [
        {
            "agency": agency,
            "requests": requests.get(agency, 0),
            "disclosures": disclosed.get(agency, (0, 0))[0],
            "taxpayers_disclosed": disclosed.get(agency, (0, 0))[1],
        }
        for agency in sorted(set(requests) | set(disclosed))
    ]
