"""The retroactive audit: a recorded batch decided again under another rule set or policy (by
default the statute as coded now), every disclosure it made that the audit would not make listed
with its reasons and a category, and the audit ledgered with a digest of its list."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import insert, select

from taxgate import identify
from taxgate.domain import Outcome, ReasonCode
from taxgate.history import History, scope_of
from taxgate.intake import read_manifest
from taxgate.ledger import Binding, Field, Ledger, at, canonical
from taxgate.ledger.log import loads
from taxgate.pipeline import decide_staged, stage, workspace
from taxgate.policy import load_policies, policy_in_force
from taxgate.processes import batch_pace
from taxgate.response import SafeCSV
from taxgate.rules import RULE_SETS, is_refusal, named_rule_set
from taxgate.store import Store
from taxgate.store.models import (
    Audit,
    AuditFinding,
    Batch,
    DecisionRecord,
    Disclosure,
)

# Why a past disclosure would not be made now, most telling first. The first is the court's finding
# of 2026-02-26: the request did not set forth the taxpayer's address (§ 6103(i)(2)(B)(i)).
CATEGORIES = {
    "address_not_set_forth": "the request did not set forth an address (§ 6103(i)(2)(B)(i))",
    "request_defective": "the request was defective on other grounds (§ 6103(i)(2)(A)-(B))",
    "address_not_on_record": "the address given was not one the taxpayer filed from (identification rule 3)",
    "review": "identification was near the line: an officer would have decided",
    "not_identified": "the taxpayer was not positively identified",
}
# The same findings as a taxpayer reads them in their § 7431 notice.
FOR_THE_TAXPAYER = {
    "address_not_set_forth": "the request did not give your address, which the law requires before anything is "
    "disclosed (26 U.S.C. § 6103(i)(2)(B)(i))",
    "request_defective": "the request did not meet the other requirements of the law (26 U.S.C. § 6103(i)(2)(A)-(B)), "
    "such as its purpose, the statute it named or the officer it named",
    "address_not_on_record": "the address in the request was not one you filed from, so we could not be sure the "
    "request was about you",
    "review": "the details in the request did not match our records closely enough to be sure it was about you",
    "not_identified": "the details in the request did not match our records well enough to show it was about you",
}
_NOT_SET_FORTH = {
    ReasonCode.ADDRESS_MISSING,
    ReasonCode.ADDRESS_PLACEHOLDER,
    ReasonCode.ADDRESS_INCOMPLETE,
}
FINDING_COLUMNS = (
    "request_id",
    "row_number",
    "disclosure_ledger_index",
    "tin",
    "path",
    "category",
    "outcome_now",
    "reasons_now",
    "reasons_then",
)


class RemediationError(ValueError):
    """An audit or incident that cannot be carried out as asked; one line for the user."""


def category(outcome: Outcome, codes: tuple[ReasonCode, ...]) -> str:
    """The finding a past disclosure falls under, given the audit's decision for it."""
    if _NOT_SET_FORTH & set(codes):
        return "address_not_set_forth"
    if any(is_refusal(c) for c in codes) or outcome is Outcome.REFUSED:
        return "request_defective"
    if ReasonCode.ID_ADDRESS_NOT_ON_RECORD in codes:
        return "address_not_on_record"
    if outcome is Outcome.REVIEW:
        return "review"
    return "not_identified"


@dataclass
class AuditResult:
    audit_id: int
    batch_id: int
    batch_ref: str
    then: str  # rule set + policy the batch was decided under
    now: str  # rule set + policy of the audit
    audited: int  # disclosures decided again
    not_made: int
    by_category: dict[str, int]
    by_path: dict[
        str, dict[str, int]
    ]  # tin | name_address -> disclosed, not_made, address_not_set_forth
    findings_file: str
    ledger_index: int
    existing: bool = False  # the same audit had been run and recorded before
    shape: dict = field(default_factory=dict)


def audit(
    store: Store,
    manifest_path: Path,
    master_path: Path,
    out_dir: Path,
    rules: str = "statute",
    policy_path: Path | None = None,
) -> AuditResult:
    """Decide a recorded batch's disclosures again under `rules` and the policy in force on the
    batch's as-of date (from `policy_path`, or the shipped policy). Writes `audit-ID.csv`."""
    audit_rules = named_rule_set(rules)
    manifest = read_manifest(manifest_path)
    policies = load_policies(policy_path)
    probe = manifest.submitted_at.date() if manifest.submitted_at else date.today()
    with batch_pace(), workspace(out_dir) as (work, con):
        stream = stage(manifest, policy_in_force(policies, probe), work)
        with store.session() as session:
            batch = session.execute(
                select(Batch).where(
                    Batch.agency == manifest.agency,
                    Batch.batch_ref == manifest.batch_ref,
                    Batch.rows_sha256 == stream.sha256,
                )
            ).scalar_one_or_none()
            if batch is None:
                raise RemediationError(
                    f"batch {manifest.batch_ref} from {manifest.agency} with these rows (SHA-256 "
                    f"{stream.sha256[:12]}...) was never recorded: audit the rows file it was sent with"
                )
            if batch.status != "done":
                raise RemediationError(
                    f"batch {manifest.batch_ref} is still being processed: finish it first"
                )
            as_of = date.fromisoformat(batch.as_of)
            policy = policy_in_force(policies, as_of)
            past = {
                row_number: (disclosure_id, index, tin, reasons, request_id)
                for row_number, disclosure_id, index, tin, reasons, request_id in session.execute(
                    select(
                        DecisionRecord.row_number,
                        Disclosure.id,
                        Disclosure.ledger_index,
                        Disclosure.tin,
                        DecisionRecord.reasons,
                        DecisionRecord.request_id,
                    )
                    .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
                    .where(DecisionRecord.batch_id == batch.id)
                )
            }
            then = f"{batch.rule_set_version}+{batch.policy_version}"
            batch_id, batch_ref = batch.id, batch.batch_ref
            # Judged against the history as it stood when the batch was received, in the practice it
            # was decided under (a replay's history is the replayed batches').
            practice = next(
                (r.name for r in RULE_SETS.values() if r.version == batch.rule_set_version),
                "statute",
            )
            history = History(
                store,
                batch.id,
                scope_of(batch.agency, practice),
                as_of,
                policy.history_window_days,
                received=batch.received_at.date(),
            )
        findings: list[dict] = []
        by_path: dict[str, Counter] = defaultdict(Counter)
        for chunk in decide_staged(
            con,
            work,
            master_path,
            manifest,
            policy,
            audit_rules,
            as_of,
            stream.rows,
            history=history,
        ):
            for d in chunk:
                if d.row.row_number not in past:
                    continue
                disclosure_id, index, tin, reasons_then, request_id = past[d.row.row_number]
                path = (
                    "tin"
                    if ReasonCode.ID_TIN_MATCH.value in reasons_then.split(";")
                    else "name_address"
                )
                by_path[path]["disclosed"] += 1
                decision = d.row.decision
                if decision.outcome is Outcome.DISCLOSED:
                    continue
                kind = category(decision.outcome, decision.codes)
                by_path[path]["not_made"] += 1
                by_path[path][kind] += 1
                findings.append(
                    {
                        "request_id": request_id,
                        "row_number": d.row.row_number,
                        "disclosure_ledger_index": index,
                        "tin": tin,
                        "path": path,
                        "category": kind,
                        "outcome_now": decision.outcome.value,
                        "reasons_now": ";".join(c.value for c in decision.codes),
                        "reasons_then": reasons_then,
                        "disclosure_id": disclosure_id,
                    }
                )
    now = f"{audit_rules.version}+{policy.recorded}"
    by_category = Counter(f["category"] for f in findings)
    digest = findings_digest(findings)
    summary = {
        "audited": len(past),
        "not_made": len(findings),
        "by_category": dict(sorted(by_category.items())),
        "by_path": {p: dict(sorted(c.items())) for p, c in sorted(by_path.items())},
        "findings_sha256": digest,
    }
    ledger = Ledger(store)
    run_at = datetime.now(UTC)
    with store.session.begin() as session:
        existing = (
            session.execute(
                select(Audit).where(
                    Audit.batch_id == batch_id,
                    Audit.rule_set_version == audit_rules.version,
                    Audit.policy_version == policy.recorded,
                    Audit.model_version == identify.MODEL_VERSION,
                )
            )
            .scalars()
            .first()
        )
        if existing is not None and json.loads(existing.summary)["findings_sha256"] == digest:
            row = existing  # decided the same way again: one audit on record, not two
        else:
            (index,) = ledger.append(
                session,
                [
                    {
                        "kind": "audit",
                        "batch": batch_id,
                        "then": then,
                        "now": now,
                        "model": identify.MODEL_VERSION,
                        "at": at(run_at),
                        **summary,
                    }
                ],
            )
            row = Audit(
                batch_id=batch_id,
                rule_set_version=audit_rules.version,
                policy_version=policy.recorded,
                model_version=identify.MODEL_VERSION,
                run_at=run_at,
                audited=len(past),
                not_made=len(findings),
                summary=canonical(summary).decode(),
                ledger_index=index,
            )
            session.add(row)
            session.flush()
            if findings:
                session.execute(
                    insert(AuditFinding),
                    [
                        {
                            "audit_id": row.id,
                            "disclosure_id": f["disclosure_id"],
                            "path": f["path"],
                            "category": f["category"],
                            "outcome": f["outcome_now"],
                            "reasons": f["reasons_now"],
                        }
                        for f in findings
                    ],
                )
        audit_id, audit_index = row.id, row.ledger_index
    out_dir.mkdir(parents=True, exist_ok=True)
    findings_file = out_dir / f"audit-{audit_id}.csv"
    with open(findings_file, "w", newline="", encoding="utf-8") as fh:
        writer = SafeCSV(fh)
        writer.writerow(FINDING_COLUMNS)
        writer.writerows([f.get(c, "") for c in FINDING_COLUMNS] for f in findings)
    result = AuditResult(
        audit_id,
        batch_id,
        batch_ref,
        then,
        now,
        len(past),
        len(findings),
        dict(by_category),
        summary["by_path"],
        str(findings_file),
        audit_index,
        existing=row is existing,
        shape=shape(summary["by_path"]),
    )
    (out_dir / f"audit-{audit_id}.json").write_text(
        json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8"
    )
    return result


def findings_digest(findings: list[dict]) -> str:
    """The SHA-256 the audit's entry commits its list of findings to, in row order."""
    return hashlib.sha256(
        b"".join(canonical({k: f[k] for k in FINDING_COLUMNS}) + b"\n" for f in findings)
    ).hexdigest()


def shape(by_path: dict[str, dict[str, int]]) -> dict:
    """The court's finding, in this audit's figures: of the disclosures made on the TIN path, how
    many had no valid requester address."""
    tin = by_path.get("tin", {})
    made, missing = tin.get("disclosed", 0), tin.get("address_not_set_forth", 0)
    return {
        "tin_path_disclosed": made,
        "tin_path_without_valid_address": missing,
        "share": round(missing / made, 4) if made else 0.0,
    }


def audit_entry(row: dict, digests: dict[int, str]) -> dict:
    """An audit's entry: its figures (from its row) and the digest of its findings (recomputed from
    the findings' rows, so that an edited or deleted finding no longer matches)."""
    return {
        **loads(row["summary"]),  # the figures; what the row's own columns say wins over them
        "kind": "audit",
        "batch": row["batch_id"],
        "then": f"{row['then_rules']}+{row['then_policy']}",
        "now": f"{row['rule_set_version']}+{row['policy_version']}",
        "model": row["model_version"],
        "at": at(row["run_at"]),
        "audited": row["audited"],
        "not_made": row["not_made"],
        "findings_sha256": digests.get(row["id"], findings_digest([])),
    }


def _digests(connection) -> dict[int, str]:
    found: dict[int, list[dict]] = defaultdict(list)
    for audit_id, *values in connection.execute(
        select(
            AuditFinding.audit_id,
            DecisionRecord.request_id,
            DecisionRecord.row_number,
            Disclosure.ledger_index,
            Disclosure.tin,
            AuditFinding.path,
            AuditFinding.category,
            AuditFinding.outcome,
            AuditFinding.reasons,
            DecisionRecord.reasons,
        )
        .outerjoin(Disclosure, Disclosure.id == AuditFinding.disclosure_id)  # a finding without its
        .outerjoin(
            DecisionRecord, DecisionRecord.id == Disclosure.decision_id
        )  # disclosure still counts, and differs
        .order_by(AuditFinding.audit_id, DecisionRecord.row_number, AuditFinding.id)
    ):
        found[audit_id].append(dict(zip(FINDING_COLUMNS, values)))
    return {audit_id: findings_digest(rows) for audit_id, rows in found.items()}


AUDITS = Binding(
    kind="audit",
    table="audits",
    index=Audit.ledger_index,
    key=Audit.id,
    source=Audit.__table__.outerjoin(Batch.__table__, Batch.id == Audit.batch_id),
    fields=(
        Field("id", Audit.id, "int"),
        Field("batch_id", Audit.batch_id, "int"),
        Field("then_rules", Batch.rule_set_version),
        Field("then_policy", Batch.policy_version),
        Field("rule_set_version", Audit.rule_set_version),
        Field("policy_version", Audit.policy_version),
        Field("model_version", Audit.model_version),
        Field("run_at", Audit.run_at, "moment"),
        Field("audited", Audit.audited, "int"),
        Field("not_made", Audit.not_made, "int"),
        Field("summary", Audit.summary),
    ),
    entry=audit_entry,
    prepare=_digests,
    describe=lambda row: f"batch {row['batch_id']}, {row['rule_set_version']}",
)
