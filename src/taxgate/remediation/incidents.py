"""Incidents: an audit's list turned into a disposal request to the recipient and a notice to each
taxpayer concerned (26 U.S.C. § 7431), due times from the policy, all ledgered; closed once the
recipient certifies disposal and every notice is sent."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from taxgate.identify.master import taxpayer_records
from taxgate.ledger import Binding, Field, Ledger, at
from taxgate.notices import close_incident_if_done, owe_for_incident
from taxgate.policy import load_policies, policy_in_force
from taxgate.remediation.audits import CATEGORIES, FOR_THE_TAXPAYER, RemediationError
from taxgate.rules import REPLAYED_VERSIONS
from taxgate.store import Store
from taxgate.store.models import (
    Audit,
    AuditFinding,
    Batch,
    DecisionRecord,
    Disclosure,
    Incident,
    NoticeRecord,
)

# 26 U.S.C. § 7431 as the taxpayer notice states it. Plain words, not legal advice.
RIGHTS_7431 = (
    "Under 26 U.S.C. § 7431(a) you may bring a civil action for damages against the United States in a "
    "United States district court for a disclosure of your return information in violation of 26 U.S.C. § 6103.",
    "Under § 7431(c) the damages are the greater of $1,000 for each act of unauthorized disclosure or the "
    "actual damages you sustained (plus punitive damages where the disclosure was willful or grossly "
    "negligent), and the costs of the action.",
    "Under § 7431(d) the action must be brought within 2 years after the date on which you discover the "
    "unauthorized disclosure.",
)


@dataclass(frozen=True)
class IncidentStatus:
    id: int
    audit_id: int
    agency: str
    opened_at: datetime
    disposal_certified_at: datetime | None
    disposal_certified_by: str
    closed_at: datetime | None
    notices: int
    notices_sent: int
    ledger_index: int


def open_incident(
    store: Store,
    audit_id: int,
    policy_path: Path | None = None,
    now: datetime | None = None,
    master_path: Path | None = None,
) -> IncidentStatus:
    """Open an incident for an audit's findings (once per audit): a disposal request to the
    recipient and one notice per taxpayer, with due times from the policy in force today.

    Each taxpayer notice is addressed to the taxpayer by the name on their latest record in the
    master (`master_path`; without it, "To the taxpayer") at the address that was disclosed. A
    disclosure replayed from a past practice is dated on the day that practice made it (the batch's
    date), not the day of the replay."""
    now = now or datetime.now(UTC)
    policy = policy_in_force(load_policies(policy_path), now.date())
    ledger = Ledger(store)
    with store.session.begin() as session:
        row = session.get(Audit, audit_id)
        if row is None:
            raise RemediationError(f"no audit {audit_id}")
        if session.execute(select(Incident.id).where(Incident.audit_id == audit_id)).first():
            raise RemediationError(
                f"audit {audit_id} already has an incident: see `taxgate incidents list`"
            )
        if row.not_made == 0:
            raise RemediationError(
                f"audit {audit_id} found no disclosure that should not have been made"
            )
        batch = session.get(Batch, row.batch_id)
        found = session.execute(
            select(
                AuditFinding.category,
                AuditFinding.reasons,
                Disclosure.tin,
                Disclosure.value,
                Disclosure.disclosed_at,
                Disclosure.ledger_index,
                DecisionRecord.request_id,
            )
            .join(Disclosure, Disclosure.id == AuditFinding.disclosure_id)
            .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
            .where(AuditFinding.audit_id == audit_id)
            .order_by(Disclosure.ledger_index)
        ).all()
        (index,) = ledger.append(
            session,
            [
                opened_entry(
                    {"audit_entry": row.ledger_index, "agency": batch.agency, "opened_at": now},
                    (len(found), len({f.tin for f in found})),
                )
            ],
        )
        incident = Incident(
            audit_id=audit_id, agency=batch.agency, opened_at=now, ledger_index=index
        )
        session.add(incident)
        session.flush()
        owe_for_incident(
            session,
            ledger,
            "disposal_request",
            incident,
            batch.agency,
            "",
            now + timedelta(days=policy.remediation.disposal_request_days),
            {
                "agency": batch.agency,
                "batch_ref": batch.batch_ref,
                "audit": audit_id,
                "disclosures": [
                    {
                        "request_id": f.request_id,
                        "ledger_index": f.ledger_index,
                        "date": batch.as_of
                        if batch.rule_set_version in REPLAYED_VERSIONS
                        else f.disclosed_at.date().isoformat(),
                        "finding": f.category,
                    }
                    for f in found
                ],
                "findings": dict(sorted(Counter(f.category for f in found).items())),
                "labels": {f.category: CATEGORIES[f.category] for f in found},
            },
        )
        per_taxpayer: dict[str, list] = defaultdict(list)
        for f in found:
            per_taxpayer[f.tin].append(f)
        names = {
            tin: _name(rows[0])
            for tin, rows in (
                taxpayer_records(master_path, list(per_taxpayer)) if master_path else {}
            ).items()
        }
        replayed = batch.rule_set_version in REPLAYED_VERSIONS
        for tin, items in sorted(per_taxpayer.items()):
            owe_for_incident(
                session,
                ledger,
                "taxpayer",
                incident,
                f"Taxpayer TIN ending {tin[-4:]}",
                tin,
                now + timedelta(days=policy.remediation.taxpayer_notice_days),
                {
                    "tin_last4": tin[-4:],
                    "name": names.get(tin, ""),
                    "mail_to": json.loads(items[-1].value),
                    "recipient_agency": batch.agency,
                    "disclosures": [
                        {
                            "date": batch.as_of if replayed else f.disclosed_at.date().isoformat(),
                            "item": "last known address",
                            "ledger_index": f.ledger_index,
                            "finding": FOR_THE_TAXPAYER[f.category],
                        }
                        for f in items
                    ],
                    "rights": list(RIGHTS_7431),
                },
            )
        return _status(session, incident)


def _name(record: dict) -> str:
    return " ".join(
        record.get(k, "")
        for k in ("first_name", "middle_name", "last_name", "suffix")
        if record.get(k, "")
    ).strip()


def certify_disposal(
    store: Store, incident_id: int, by: str, when: datetime | None = None
) -> IncidentStatus:
    """Record the recipient's certification that it disposed of the records (ledgered, once)."""
    when = when or datetime.now(UTC)
    if not by.strip():
        raise RemediationError("say who certified the disposal (--by NAME, TITLE)")
    ledger = Ledger(store)
    with store.session.begin() as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            raise RemediationError(f"no incident {incident_id}")
        if incident.disposal_certified_at is not None:
            raise RemediationError(
                f"incident {incident_id}: disposal was certified on "
                f"{incident.disposal_certified_at.date()} by {incident.disposal_certified_by}"
            )
        (index,) = ledger.append(
            session,
            [
                certified_entry(
                    {"ledger_index": incident.ledger_index, "by": by.strip(), "certified_at": when}
                )
            ],
        )
        incident.disposal_certified_at, incident.disposal_certified_by = when, by.strip()
        incident.certified_index = index
        session.flush()
        close_incident_if_done(session, ledger, incident_id, when)
        return _status(session, incident)


def list_incidents(store: Store) -> list[IncidentStatus]:
    with store.session() as session:
        return [
            _status(session, i)
            for i in session.execute(select(Incident).order_by(Incident.id)).scalars()
        ]


def _status(session, incident: Incident) -> IncidentStatus:
    total, sent = session.execute(
        select(func.count(NoticeRecord.id), func.count(NoticeRecord.sent_at)).where(
            NoticeRecord.incident_id == incident.id
        )
    ).one()
    return IncidentStatus(
        incident.id,
        incident.audit_id,
        incident.agency,
        incident.opened_at,
        incident.disposal_certified_at,
        incident.disposal_certified_by,
        incident.closed_at,
        total,
        sent,
        incident.ledger_index,
    )


def opened_entry(row: dict, counts: tuple[int, int]) -> dict:
    return {
        "kind": "incident_opened",
        "audit_entry": row["audit_entry"],
        "agency": row["agency"],
        "disclosures": counts[0],
        "taxpayers": counts[1],
        "at": at(row["opened_at"]),
    }


def _finding_counts(connection) -> dict[int, tuple[int, int]]:
    return {
        audit_id: (n, tins)
        for audit_id, n, tins in connection.execute(
            select(AuditFinding.audit_id, func.count(), func.count(Disclosure.tin.distinct()))
            .outerjoin(Disclosure, Disclosure.id == AuditFinding.disclosure_id)
            .group_by(AuditFinding.audit_id)
        )
    }


def certified_entry(row: dict) -> dict:
    return {
        "kind": "disposal_certified",
        "incident_entry": row["ledger_index"],
        "by": row["by"],
        "at": at(row["certified_at"]),
    }


INCIDENT_OPENED = Binding(
    kind="incident_opened",
    table="incidents",
    index=Incident.ledger_index,
    key=Incident.id,
    source=Incident.__table__.outerjoin(Audit.__table__, Audit.id == Incident.audit_id),
    fields=(
        Field("audit_id", Incident.audit_id, "int"),
        Field("audit_entry", Audit.ledger_index, "int"),
        Field("agency", Incident.agency),
        Field("opened_at", Incident.opened_at, "moment"),
    ),
    entry=lambda row, counts: opened_entry(row, counts.get(row["audit_id"], (0, 0))),
    prepare=_finding_counts,
)
DISPOSAL_CERTIFIED = Binding(
    kind="disposal_certified",
    table="incidents",
    index=Incident.certified_index,
    key=Incident.id,
    fields=(
        Field("ledger_index", Incident.ledger_index, "int"),
        Field("by", Incident.disposal_certified_by),
        Field("certified_at", Incident.disposal_certified_at, "moment?"),
    ),
    entry=lambda row, _: certified_entry(row),
    present=Incident.certified_index.is_not(None)
    | Incident.disposal_certified_at.is_not(None)
    | (Incident.disposal_certified_by != ""),
)
