"""What the ledger says about a batch and what left: the entries, and each table's binding to them.

Each entry is built by one function, from exactly the fields its row keeps, so that `ledger
verify` can rebuild it from the row and compare the bytes (`ledger.bindings`). What is too large
or too sensitive to ledger whole is committed to by its SHA-256: a released value, a decision's
evidence.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from taxgate.ledger import Binding, Field, at, canonical
from taxgate.ledger.log import raw
from taxgate.store.models import Batch, DecisionRecord, Disclosure, HeldItem

DISCLOSABLE = "last_known_address"


def sha256(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def weight(value: float | None) -> str | None:
    """A match weight as entries hold it: the shortest decimal string that reads back as the same
    float (entries hold no floats), so the stored weight is bound exactly."""
    return None if value is None else repr(float(value))


def codes(text: str) -> list[str]:
    """A ';'-separated list as entries hold it; an empty item stays (an edit that adds one shows)."""
    return text.split(";") if text else []


def item_value(address: dict) -> str:
    """What leaves (or would): the address as canonical JSON, as stored and hashed into the ledger."""
    return canonical({k: str(v or "") for k, v in address.items()}).decode()


def batch_received_entry(row: dict) -> dict:
    return {
        "kind": "batch_received",
        "at": at(row["received_at"]),
        "agency": row["agency"],
        "batch_ref": row["batch_ref"],
        "submitted_at": row["submitted_at"],
        "signed_by": row["signed_by"],
        "manifest_sha256": row["manifest_sha256"],
        "rows_sha256": row["rows_sha256"],
        "rows": row["rows"],
        "as_of": row["as_of"],
        "policy": row["policy_version"],
        "rule_set": row["rule_set_version"],
        "model": row["model_version"],
    }


def batch_completed_entry(batch_id: int, rows: int, outcomes: dict[str, int]) -> dict:
    return {
        "kind": "batch_completed",
        "batch": batch_id,
        "rows": rows,
        "outcomes": dict(sorted(outcomes.items())),
    }


def decision_entry(row: dict, batch: dict | None = None) -> dict:
    """One decision, with the rule-set and model versions it was decided under (the batch's: from
    `batch`, or from `row` itself); its evidence (which an officer's review reads) is committed to
    by its SHA-256; the statute the request cites, when it cites one (entries written before the
    store kept it have none)."""
    versions = row if batch is None else batch
    cited = {"statute": row["statute"]} if row.get("statute") else {}
    return {
        **cited,
        "kind": "decision",
        "batch": row["batch_id"],
        "row": row["row_number"],
        "request_id": row["request_id"],
        "requested_tin": row["requested_tin"],
        "rule_set": f"{versions['rule_set_version']}+{versions['policy_version']}",
        "model": versions["model_version"],
        "official": row["official"],
        "case": row["case_number"],
        "outcome": row["outcome"],
        "reasons": codes(row["reasons"]),
        "refused_items": codes(row["refused_items"]),
        "matched_tin": row["matched_tin"],
        "weight": weight(row["match_weight"]),
        "runner_up_tin": row["runner_up_tin"],
        "runner_up_weight": weight(row["runner_up_weight"]),
        "evidence_sha256": sha256(row["evidence"]),
    }


def disclosure_entry(row: dict) -> dict:
    """One item released; the value that left is committed to by its SHA-256."""
    return {
        "kind": "disclosure",
        "batch": row["batch_id"],
        "row": row["row_number"],
        "request_id": row["request_id"],
        "tin": row["tin"],
        "item": row["item"],
        "value_sha256": sha256(row["value"]),
        "at": at(row["at"]),
    }


def held_entry(row: dict) -> dict:
    """One item an order held: what would leave (by its SHA-256), to whom, under which statute."""
    return {
        "kind": "held",
        "batch": row["batch_id"],
        "row": row["row_number"],
        "request_id": row["request_id"],
        "tin": row["tin"],
        "item": row["item"],
        "value_sha256": sha256(row["value"]),
        "agency": row["agency"],
        "statute": row["statute"],
    }


# -- bindings ------------------------------------------------------------------------------------

_VERSIONS = (
    Field("policy_version", Batch.policy_version),
    Field("rule_set_version", Batch.rule_set_version),
    Field("model_version", Batch.model_version),
)

BATCH_RECEIVED = Binding(
    kind="batch_received",
    table="batches",
    index=Batch.received_index,
    key=Batch.id,
    fields=(
        Field("received_at", Batch.received_at, "moment"),
        Field("agency", Batch.agency),
        Field("batch_ref", Batch.batch_ref),
        Field("submitted_at", Batch.submitted_at),
        Field("signed_by", Batch.signed_by),
        Field("manifest_sha256", Batch.manifest_sha256),
        Field("rows_sha256", Batch.rows_sha256),
        Field("rows", Batch.rows, "int"),
        Field("as_of", Batch.as_of),
        *_VERSIONS,
    ),
    entry=lambda row, _: batch_received_entry(row),
    describe=lambda row: f"{row['agency']} {row['batch_ref']}",
)


class _Outcomes:
    """Each batch's decisions counted by outcome, as its completion is checked: one batch at a
    time (its index finds its rows), so that each verifying process counts only the batches whose
    completion it checks, rather than both counting every decision in the store (4.5 s each at
    10M)."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def get(self, batch_id: int, default: dict[str, int]) -> dict[str, int]:
        counts = self.connection.execute(
            select(DecisionRecord.outcome, func.count())
            .where(DecisionRecord.batch_id == batch_id)
            .group_by(DecisionRecord.outcome)
        ).all()
        return dict(counts) or default


def _versions(connection: Connection) -> dict[int, dict]:
    """Each batch's versions, read once rather than joined onto each of its million decisions (a
    fifth of reading them). Their types are the batch row's binding's to check; a value of the
    wrong type here makes an entry that differs from the ledgered one."""
    names = [f.name for f in _VERSIONS]
    return {
        batch_id: dict(zip(names, values))
        for batch_id, *values in connection.execute(
            select(raw(Batch.id), *(raw(f.column) for f in _VERSIONS))
        )
    }


_NO_VERSIONS = dict.fromkeys(f.name for f in _VERSIONS)  # a decision whose batch is gone


BATCH_COMPLETED = Binding(
    kind="batch_completed",
    table="batches",
    index=Batch.completed_index,
    key=Batch.id,
    fields=(
        Field("id", Batch.id, "int"),
        Field("rows", Batch.rows, "int"),
        Field("status", Batch.status),
        Field("committed_rows", Batch.committed_rows, "int"),
    ),
    entry=lambda row, outcomes: batch_completed_entry(
        row["id"], row["rows"], outcomes.get(row["id"], {})
    ),
    present=(Batch.completed_index.is_not(None)) | (Batch.status == "done"),
    check=lambda row: (
        f"its status is {row['status']!r}, not 'done'"
        if row["status"] != "done"
        else f"its mark says {row['committed_rows']:,} rows recorded, not {row['rows']:,}"
        if row["committed_rows"] != row["rows"]
        else None
    ),
    prepare=_Outcomes,
)

DECISIONS = Binding(
    kind="decision",
    table="decisions",
    index=DecisionRecord.ledger_index,
    key=DecisionRecord.id,
    fields=(
        Field("batch_id", DecisionRecord.batch_id, "int"),
        Field("row_number", DecisionRecord.row_number, "int"),
        Field("request_id", DecisionRecord.request_id),
        Field("requested_tin", DecisionRecord.requested_tin),
        Field("official", DecisionRecord.official),
        Field("case_number", DecisionRecord.case_number),
        Field("statute", DecisionRecord.statute),
        Field("outcome", DecisionRecord.outcome),
        Field("reasons", DecisionRecord.reasons),
        Field("refused_items", DecisionRecord.refused_items),
        Field("matched_tin", DecisionRecord.matched_tin),
        Field("match_weight", DecisionRecord.match_weight, "real?"),
        Field("runner_up_tin", DecisionRecord.runner_up_tin),
        Field("runner_up_weight", DecisionRecord.runner_up_weight, "real?"),
        Field("evidence", DecisionRecord.evidence, "str?"),
    ),
    entry=lambda row, versions: decision_entry(row, versions.get(row["batch_id"], _NO_VERSIONS)),
    prepare=_versions,
    describe=lambda row: (
        f"batch {row['batch_id']}, row {row['row_number']}, request {row['request_id']}"
    ),
)

_OF_DECISION = (
    Field("batch_id", DecisionRecord.batch_id, "int"),
    Field("row_number", DecisionRecord.row_number, "int"),
    Field("request_id", DecisionRecord.request_id),
)

DISCLOSURES = Binding(
    kind="disclosure",
    table="disclosures",
    index=Disclosure.ledger_index,
    key=Disclosure.id,
    source=Disclosure.__table__.outerjoin(
        DecisionRecord.__table__, DecisionRecord.id == Disclosure.decision_id
    ),
    fields=(
        *_OF_DECISION,
        Field("tin", Disclosure.tin),
        Field("item", Disclosure.item),
        Field("value", Disclosure.value),
        Field("at", Disclosure.disclosed_at, "moment"),
    ),
    entry=lambda row, _: disclosure_entry(row),
    describe=lambda row: (
        f"batch {row['batch_id']}, row {row['row_number']}, request {row['request_id']}"
    ),
)


def _held_release_agrees(row: dict) -> str | None:
    """A held item is released exactly when a disclosure records it, at that moment."""
    released, disclosed = row["released_at"], row["disclosed_at"]
    if released is None and disclosed is not None:
        return f"a disclosure of it was made at {at(disclosed)} but it is not marked released"
    if released is not None and disclosed is None:
        return f"it is marked released at {at(released)} but no disclosure records its release"
    if released is not None and at(released) != at(disclosed):
        return f"it is marked released at {at(released)}, its disclosure says {at(disclosed)}"
    return None


HELD = Binding(
    kind="held",
    table="held_items",
    index=HeldItem.ledger_index,
    key=HeldItem.id,
    source=HeldItem.__table__.outerjoin(
        DecisionRecord.__table__, DecisionRecord.id == HeldItem.decision_id
    ).outerjoin(Disclosure.__table__, Disclosure.decision_id == HeldItem.decision_id),
    fields=(
        *_OF_DECISION,
        Field("tin", HeldItem.tin),
        Field("item", HeldItem.item),
        Field("value", HeldItem.value),
        Field("agency", HeldItem.agency),
        Field("statute", HeldItem.statute),
        Field("released_at", HeldItem.released_at, "moment?"),
        Field("disclosed_at", Disclosure.disclosed_at, "moment?"),
    ),
    entry=lambda row, _: held_entry(row),
    describe=lambda row: (
        f"batch {row['batch_id']}, row {row['row_number']}, request {row['request_id']}"
    ),
    check=_held_release_agrees,
)

BINDINGS = (BATCH_RECEIVED, BATCH_COMPLETED, DECISIONS, DISCLOSURES, HELD)
