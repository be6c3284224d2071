"""The oversight report: one self-contained HTML file (and a PDF) for a judge, an inspector general
or a privacy officer, drawn from one signed ledger checkpoint.

A checkpoint is signed first; every figure then counts only records whose ledger entry lies inside
it (index < size), so the report says exactly which state of the ledger it describes, and a reader
holding the verifier key can check that checkpoint and ask for a proof of any entry it cites.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, distinct, func, select

from taxgate.ledger import sign_checkpoint
from taxgate.ledger.checkpoint import parse as parse_checkpoint
from taxgate.policy import load_policies, policy_in_force
from taxgate.render import Document, Section, bar_chart, write
from taxgate.rules import RULE_SETS
from taxgate.store import Store
from taxgate.store.models import (
    Audit,
    Batch,
    Decision,
    Disclosure,
    HistoryBatch,
    HistoryOfficer,
    HistoryOfficialCase,
    Incident,
    Notice,
    Order,
    Review,
)

CHARTS = ("outcomes-by-reason", "match-yield", "review-rate", "disclosures-over-time", "cases-per-officer",
          "notice-timeliness")
# Identified: whatever released the item under the rule set a batch was decided by.
_RELEASING = {code.value for rules in RULE_SETS.values() for code in rules.releases}


def oversight(store: Store, out: Path, policy_path: Path | None = None, now: datetime | None = None) -> tuple[Path, Path]:
    """Write `out` (.html) and its PDF beside it; returns both paths."""
    return write(document(store, policy_path, now), out.with_suffix(""))


def document(store: Store, policy_path: Path | None = None, now: datetime | None = None) -> Document:
    """The oversight report as a Document, every figure from inside a checkpoint signed now."""
    now = now or datetime.now(UTC)
    policy = policy_in_force(load_policies(policy_path), now.date())
    note = sign_checkpoint(store)
    size = parse_checkpoint(note).size
    with store.session() as session:
        return _document(session, note, size, now, policy.thresholds.official_max_cases, policy.history_window_days)


def _caseloads(session, size: int, window_days: int, max_cases: int):
    """Distinct cases per engaged officer as the rule counts them (§ 6103(i)(2)(A)): officer and case
    folded (the history's keys), over the policy's window before the latest lawful batch, across the
    agency's batches received inside the checkpoint. A replay decides the same requests again under
    another practice, so only the statute's batches count. Returns the top 15 (label, cases), how many
    officers are over the limit, and the window."""
    counted = (select(HistoryBatch.batch_id, HistoryBatch.scope, HistoryBatch.as_of)
               .join(Batch, Batch.id == HistoryBatch.batch_id)
               .where(HistoryBatch.scope.like("%|statute"), Batch.received_index < size))
    end = session.execute(select(func.max(counted.subquery().c.as_of))).scalar()
    if end is None:
        return [], 0, None
    since = (date.fromisoformat(end) - timedelta(days=window_days)).isoformat()
    window = counted.where(HistoryBatch.as_of >= since).subquery()
    h, o = HistoryOfficialCase, HistoryOfficer
    cases = func.count(distinct(h.case_key))
    query = (select(window.c.scope, h.official_key, func.min(o.name), cases.label("cases"))
             .join(window, window.c.batch_id == h.batch_id)
             .outerjoin(o, and_(o.scope == h.scope, o.official_key == h.official_key))
             .group_by(window.c.scope, h.official_key))
    top = session.execute(query.order_by(cases.desc(), func.min(o.name)).limit(15)).all()
    over = session.execute(select(func.count()).select_from(query.having(cases > max_cases).subquery())).scalar_one()
    return [(f"{name or 'unnamed'} ({scope.split('|')[0]})", n) for scope, _, name, n in top], over, (since, end)


def _document(session, note: str, size: int, now: datetime, max_cases: int, window_days: int) -> Document:
    batches = session.execute(select(Batch).where(Batch.received_index < size).order_by(Batch.id)).scalars().all()
    within = Decision.ledger_index < size
    # Reasons come as ";"-joined strings; counting each distinct string once keeps this one small query.
    combos = session.execute(select(Decision.batch_id, Decision.outcome, Decision.reasons, func.count())
                             .where(within).group_by(Decision.batch_id, Decision.outcome, Decision.reasons)).all()
    outcomes: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    attempted: Counter[int] = Counter()
    positive: Counter[int] = Counter()
    review: Counter[int] = Counter()
    for batch_id, outcome, reasons, n in combos:
        codes = [c for c in reasons.split(";") if c]
        outcomes[outcome] += n
        by_code.update({c: n for c in codes})
        if any(c.startswith("ID_") for c in codes):
            attempted[batch_id] += n
            positive[batch_id] += n if _RELEASING & set(codes) else 0
            review[batch_id] += n if outcome == "REVIEW" else 0
    by_day: Counter[str] = Counter()
    for moment, n in session.execute(select(Disclosure.disclosed_at, func.count()).where(Disclosure.ledger_index < size)
                                     .group_by(Disclosure.disclosed_at)):
        by_day[moment.date().isoformat()] += n
    caseload, over, window = _caseloads(session, size, window_days, max_cases)
    notices = session.execute(select(Notice).where(Notice.ledger_index < size)).scalars().all()
    timeliness = _timeliness(notices, now)
    reviews = session.execute(select(Review.officer, func.count()).where(Review.ledger_index < size)
                              .group_by(Review.officer).order_by(func.count().desc())).all()
    orders = session.execute(select(Order).where(Order.ledger_index < size).order_by(Order.id)).scalars().all()
    audits = session.execute(select(Audit, Batch.batch_ref).join(Batch, Batch.id == Audit.batch_id)
                             .where(Audit.ledger_index < size).order_by(Audit.id)).all()
    incidents = session.execute(select(Incident).where(Incident.ledger_index < size).order_by(Incident.id)).scalars().all()
    disclosed = sum(by_day.values())
    total = sum(outcomes.values())
    refs = {b.id: b.batch_ref for b in batches}

    checkpoint = parse_checkpoint(note)
    facts = [
        ("Drawn from", f"ledger checkpoint at {size:,} entries (root {checkpoint.root.hex()[:16]}...)"),
        ("Written", now.isoformat(timespec="seconds")),
        ("Batches", f"{len(batches):,}"),
        ("Requests decided", f"{total:,}"),
        ("Disclosures", f"{disclosed:,} (the last known address only)"),
        ("Notices", f"{len(notices):,} ({sum(timeliness['overdue'].values()):,} overdue)"),
        ("Orders", f"{len(orders):,}"),
    ]
    yields = [(refs[b], attempted[b], positive[b], review[b]) for b in sorted(attempted)]
    sections = [
        Section("Outcomes", [
            "Every request ends with one outcome and every reason that led to it. The default answer is no: a "
            "disclosure needs every rule to pass and a positive identification.",
        ], ("outcome", "requests", "share"), [(o, f"{n:,}", _pct(n, total)) for o, n in outcomes.most_common()], [
            bar_chart("outcomes-by-reason", "Requests by reason code (a request can carry several).",
                      [c for c, _ in by_code.most_common()], [n for _, n in by_code.most_common()]),
        ]),
        Section("Identification", [
            "Match yield: of the requests that reached identification, the share identified (positively, or on the "
            "TIN path where a batch replays the 2025 practice). Review rate: the share sent to a disclosure officer.",
        ], ("batch", "identification attempted", "identified", "yield", "review", "review rate"),
            [(ref, f"{a:,}", f"{p:,}", _pct(p, a), f"{r:,}", _pct(r, a)) for ref, a, p, r in yields], [
            bar_chart("match-yield", "Match yield by batch (% of requests that reached identification).",
                      [ref for ref, *_ in yields], [100 * p / a if a else 0 for _, a, p, _ in yields],
                      value_format="{:.1f}%"),
            bar_chart("review-rate", "Review rate by batch (% of requests that reached identification).",
                      [ref for ref, *_ in yields], [100 * r / a if a else 0 for _, a, _, r in yields],
                      value_format="{:.1f}%"),
        ]),
        Section("Disclosures over time", [f"{disclosed:,} disclosures, by the day they left."],
                figures=[bar_chart("disclosures-over-time", "Disclosures per day.", sorted(by_day),
                                   [by_day[d] for d in sorted(by_day)], horizontal=False)]),
        Section("Cases per officer", [
            "26 U.S.C. § 6103(i)(2)(A) allows disclosure only to officers personally and directly engaged in the "
            f"investigation. The policy treats more than {max_cases} distinct cases for one officer within "
            f"{window_days} days, across the agency's batches, as implausible. "
            + (f"Counted from {window[0]} to {window[1]} (the window before the latest batch), over the statute's "
               f"batches (a replay decides the same requests again): officers above it: {over:,}."
               if window else "No batch has been decided under the statute yet."),
            "Review decisions per disclosure officer: "
            + ("; ".join(f"{o}: {n:,}" for o, n in reviews) if reviews else "none recorded yet."),
        ], figures=[bar_chart("cases-per-officer", f"Distinct case numbers per engaged officer within {window_days} days, "
                              "across batches (top 15).",
                              [label for label, _ in caseload], [n for _, n in caseload],
                              reference=max_cases,
                              reference_label=f"plausible caseload ({max_cases})")]),
        Section("Notices", [
            "Notices owed to courts, recipients and taxpayers, and whether they went out on time.",
        ], ("kind", "sent on time", "sent late", "overdue", "not yet due"),
            [(k, *(f"{timeliness[s][k]:,}" for s in ("on_time", "late", "overdue", "pending"))) for k in
             sorted({n.kind for n in notices})], [
            _timeliness_chart(timeliness),
        ]),
        Section("Court orders", [], ("id", "kind", "court", "docket", "from", "to", "lifted"),
                [(str(o.id), o.kind, o.court, o.docket, o.effective_from, o.effective_to or "",
                  o.lifted_at.date().isoformat() if o.lifted_at else "") for o in orders]
                ) if orders else Section("Court orders", ["No order is recorded."]),
        Section("Retroactive audits and incidents", [
            "An audit decides a batch's past disclosures again under the statute as coded now and lists those it "
            "would not have made. An incident asks the recipient to dispose of them and tells each taxpayer "
            "(26 U.S.C. § 7431).",
        ] + [_audit_line(a, ref) for a, ref in audits] + [
            f"Incident {i.id} (audit {i.audit_id}, {i.agency}): opened {i.opened_at.date()}, disposal "
            f"{'certified by ' + i.disposal_certified_by if i.disposal_certified_by else 'not yet certified'}, "
            f"{'closed ' + str(i.closed_at.date()) if i.closed_at else 'open'}." for i in incidents
        ] if audits else ["No audit is recorded."]),
        Section("The checkpoint this report was drawn from", [
            "A signed note (C2SP tlog-checkpoint). With the verifier key, `taxgate ledger check` verifies it "
            "offline, and `taxgate ledger prove INDEX` proves that any entry this report counts is in it.",
        ], preformatted=note),
    ]
    return Document("taxgate oversight report", "Disclosures of return information under 26 U.S.C. § 6103(i)(2): "
                    "what was asked, what left, and why", facts, sections,
                    "Synthetic demo data. Every figure counts only records inside the checkpoint above.")


def _audit_line(audit: Audit, batch_ref: str) -> str:
    summary = json.loads(audit.summary)
    tin = summary.get("by_path", {}).get("tin", {})
    line = (f"Audit {audit.id} of {batch_ref} under {audit.rule_set_version}+{audit.policy_version}: "
            f"{audit.audited:,} past disclosures decided again, {audit.not_made:,} ({_pct(audit.not_made, audit.audited)}) "
            "would not have been made.")
    if tin.get("disclosed"):
        line += (f" On the TIN path {tin['disclosed']:,} were disclosed and {tin.get('address_not_set_forth', 0):,} "
                 f"({_pct(tin.get('address_not_set_forth', 0), tin['disclosed'])}) had no valid requester address.")
    return line


def _timeliness(notices: list[Notice], now: datetime) -> dict[str, Counter]:
    state: dict[str, Counter] = defaultdict(Counter)
    for n in notices:
        due = n.due_at
        if n.sent_at is not None:
            state["on_time" if n.sent_at <= due else "late"][n.kind] += 1
        else:
            state["overdue" if due < now else "pending"][n.kind] += 1
    return state


def _timeliness_chart(state: dict[str, Counter]):
    labels = ["sent on time", "sent late", "overdue", "not yet due"]
    values = [sum(state[s].values()) for s in ("on_time", "late", "overdue", "pending")]
    return bar_chart("notice-timeliness", "Notices by timeliness (all kinds).", labels if any(values) else [],
                     values if any(values) else [])


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "-"


__all__ = ["CHARTS", "oversight"]

