"""The operational store's tables (SQLAlchemy 2). Alembic migrations in `store/migrations` create them;
change a table here and add a migration there.

What is ledgered is also kept here in queryable form. The ledger is the truth and the tables follow it:
every row that records an event carries the index of its entry (`ledger_index`, and `*_index` for a
later event on the same row: a lift, a sending, a certification), `taxgate ledger verify` requires
every entry's row and every row's entry, field by field, and what decides a release is checked
against its entry before it is acted on.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator):
    """A moment in UTC. PostgreSQL keeps the zone; SQLite hands back naive values, which are UTC
    here, so they are made aware on the way out and every caller compares like with like."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class Batch(Base):
    """One batch as received. A batch is known by agency, reference and the SHA-256 of its rows, so
    the same file sent twice is the same batch (decided once)."""

    __tablename__ = "batches"
    __table_args__ = (UniqueConstraint("agency", "batch_ref", "rows_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(String(64))
    batch_ref: Mapped[str] = mapped_column(String(200))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    rows_sha256: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[str] = mapped_column(String(40))  # as the manifest states it
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    as_of: Mapped[str] = mapped_column(
        String(10)
    )  # the date the rules were applied; fixed at receipt
    rows: Mapped[int] = mapped_column(Integer)
    policy_version: Mapped[str] = mapped_column(String(64))
    rule_set_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # processing | done
    committed_rows: Mapped[int] = mapped_column(
        Integer, default=0
    )  # rows decided and ledgered so far
    received_index: Mapped[int] = mapped_column(BigInteger)  # ledger entry "batch_received"
    # where the manifest was read from, so a review can show the request as sent (checked by SHA-256)
    manifest_path: Mapped[str] = mapped_column(Text, default="", server_default="")
    completed_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    signed_by: Mapped[str] = mapped_column(
        String(200), default="", server_default=""
    )  # as the manifest names the signer


class DecisionRecord(Base):
    """One request of a batch and what was decided about it."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("batch_id", "row_number"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(200))
    requested_tin: Mapped[str] = mapped_column(String(16), index=True)  # digits, or ""
    # (p)(3)(A)'s accounting of the request: who asked, for which case (caseloads in the oversight report)
    official: Mapped[str] = mapped_column(String(200), default="", server_default="")
    case_number: Mapped[str] = mapped_column(String(200), default="", server_default="")
    statute: Mapped[str] = mapped_column(
        Text, default="", server_default=""
    )  # as the request cites it: the purpose
    outcome: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[str] = mapped_column(Text)  # ";"-separated codes
    refused_items: Mapped[str] = mapped_column(Text)
    matched_tin: Mapped[str] = mapped_column(String(16), index=True)
    match_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    runner_up_tin: Mapped[str] = mapped_column(String(16))
    runner_up_weight: Mapped[float | None] = mapped_column(Float, nullable=True)
    evidence: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON; auditors only
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class HistoryBatch(Base):
    """A batch's place in its requester's history (`taxgate.history`): registered when its rules run,
    before any row is decided, under the scope's lock, so that of two batches decided at once the
    second counts the first. `scope` is the agency and the practice ("statute", or a replayed one: a
    replay of what was done in 2025 is not the history a lawful batch is judged against); `seq` is
    the order of registration within it."""

    __tablename__ = "history_batches"
    __table_args__ = (UniqueConstraint("scope", "seq"),)

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", name="fk_history_batches_batch"),
        primary_key=True,
        autoincrement=False,
    )
    scope: Mapped[str] = mapped_column(String(120))
    seq: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[str] = mapped_column(
        String(10)
    )  # the batch's as-of date: the window is counted on it
    received: Mapped[str] = mapped_column(
        String(10)
    )  # the day it arrived: and on this, which no one can backdate
    requests: Mapped[int] = mapped_column(Integer)  # rows registered (what was read from the batch)


class HistoryScope(Base):
    """A requester's history (agency | practice), numbered: the key tables carry the small number."""

    __tablename__ = "history_scopes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(120), unique=True)


# The keys themselves: one table per kind, each its own clustered index (SQLite: WITHOUT ROWID), so
# that registering a batch is one sorted insert per kind and every figure is one index range per
# key. `scope` is HistoryScope.id (small: a row stays short); keys are 60-bit hashes of the folded text.
_CLUSTERED = {"sqlite_with_rowid": False}


class _RequestKeyRow:
    """A key of one registered request: which scope, which key, which batch and row."""

    scope: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class HistoryRequestId(_RequestKeyRow, Base):
    """Each registered request's request id."""

    __tablename__ = "history_request_ids"
    __table_args__ = (_CLUSTERED,)


class HistoryPersonCase(_RequestKeyRow, Base):
    """Each registered request's person (name, date of birth) and case number."""

    __tablename__ = "history_person_cases"
    __table_args__ = (_CLUSTERED,)


class HistoryOfficialCase(Base):
    """Each distinct (engaged officer, case number) of a registered batch."""

    __tablename__ = "history_official_cases"
    __table_args__ = (_CLUSTERED,)

    scope: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    official_key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class HistoryReason(Base):
    """How many requests of a registered batch carry each (normalised) reason text."""

    __tablename__ = "history_reasons"
    __table_args__ = (_CLUSTERED,)

    scope: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    relevance_key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    uses: Mapped[int] = mapped_column(Integer)


class HistoryOfficer(Base):
    """The officer's name as first written, for the figures a person reads (the key is folded)."""

    __tablename__ = "history_officers"

    scope: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    official_key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))


class Disclosure(Base):
    """An item released: today only the last known address (§ 6103(i)(2)(C), (b)(6))."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    tin: Mapped[str] = mapped_column(String(16), index=True)
    item: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)  # canonical JSON of what left
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class Review(Base):
    """A disclosure officer's action on a request in REVIEW."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), index=True)
    officer: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class OrderRecord(Base):
    """A court order or agreement term (docs/DESIGN.md "Court orders")."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("lifted_index", name="uq_orders_lifted_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    court: Mapped[str] = mapped_column(String(200))
    docket: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)  # the order as given (JSON)
    effective_from: Mapped[str] = mapped_column(String(10))
    effective_to: Mapped[str | None] = mapped_column(String(10), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lifted_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # "order_lifted"
    # who lifted it, on what authority (the court's order ending it) and why (ledgered: the reason by SHA-256)
    lifted_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lifted_authority: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lifted_reason: Mapped[str] = mapped_column(Text, default="", server_default="")


class NoticeRecord(Base):
    """A notice owed: to a court, to a recipient, to a taxpayer."""

    __tablename__ = "notices"
    __table_args__ = (
        UniqueConstraint("kind", "batch_id", "order_id", name="uq_notices_kind_batch_order"),
        UniqueConstraint("kind", "incident_id", "tin", name="uq_notices_kind_incident_tin"),
        UniqueConstraint("sent_index", name="uq_notices_sent_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", name="fk_notices_batch"), nullable=True
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", name="fk_notices_order"), nullable=True
    )
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", name="fk_notices_incident"), nullable=True
    )
    tin: Mapped[str] = mapped_column(
        String(16), default="", server_default=""
    )  # a taxpayer notice's taxpayer
    recipient: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    sent_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # "notice_sent"


class LedgerEntry(Base):
    """The log itself: entry `idx` is canonical JSON; `leaf_hash` is its RFC 9162 leaf hash."""

    __tablename__ = "ledger_entries"

    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerTile(Base):
    """Stored tree hashes, as C2SP tlog-tiles: tile (level, n) holds up to 256 hashes of the tree's
    nodes at height 8 * level, numbers 256 n onwards. Only the right edge is ever partial."""

    __tablename__ = "ledger_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class CheckpointRecord(Base):
    """A signed tree head (C2SP checkpoint note), kept so that any later state can be proved
    consistent with it."""

    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Cosignature(Base):
    """A witness's cosignature (C2SP tlog-cosignature/v1) on the checkpoint of one size: the
    signature line it returned, kept so the checkpoint is served with it."""

    __tablename__ = "ledger_cosignatures"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    cosigned_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerHead(Base):
    """One row: the log's size. Appenders lock it, so entries are numbered without gaps or races."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)


class HeldItem(Base):
    """An item that would have been released but an order held it: kept until the hold ends, then
    released once (a Disclosure) or never."""

    __tablename__ = "held_items"
    __table_args__ = (UniqueConstraint("ledger_index", name="uq_held_items_ledger_index"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)
    tin: Mapped[str] = mapped_column(String(16))
    item: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)  # canonical JSON of what would leave
    agency: Mapped[str] = mapped_column(String(64))
    statute: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # "held"


class Audit(Base):
    """A retroactive audit: a batch's disclosures decided again under another rule set or policy."""

    __tablename__ = "audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(
        ForeignKey("batches.id", name="fk_audits_batch"), index=True
    )
    rule_set_version: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    audited: Mapped[int] = mapped_column(Integer)  # disclosures decided again
    not_made: Mapped[int] = mapped_column(Integer)  # of which the audit's rules would not have made
    summary: Mapped[str] = mapped_column(Text)  # JSON figures
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class AuditFinding(Base):
    """One past disclosure that the audit's rules would not have made, and why."""

    __tablename__ = "audit_findings"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    audit_id: Mapped[int] = mapped_column(
        ForeignKey("audits.id", name="fk_findings_audit"), index=True
    )
    disclosure_id: Mapped[int] = mapped_column(
        ForeignKey("disclosures.id", name="fk_findings_disclosure")
    )
    path: Mapped[str] = mapped_column(String(16))  # how it was identified then: tin | name_address
    category: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))  # under the audit's rules
    reasons: Mapped[str] = mapped_column(Text)  # every code under the audit's rules


class Incident(Base):
    """Disclosures found unlawful, remediated: a disposal request to the recipient and a notice to each
    taxpayer, tracked until the recipient certifies disposal and every notice is sent."""

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("certified_index", name="uq_incidents_certified_index"),
        UniqueConstraint("closed_index", name="uq_incidents_closed_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(
        ForeignKey("audits.id", name="fk_incidents_audit"), unique=True
    )
    agency: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disposal_certified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    disposal_certified_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    certified_index: Mapped[int | None] = mapped_column(
        BigInteger, nullable=True
    )  # "disposal_certified"
    closed_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # "incident_closed"


class User(Base):
    """Someone who may use the service, in one role (docs/DESIGN.md "HTTP API"); a requester belongs to
    one agency and sees only its batches. The password is kept as an argon2id hash, or not at all
    (an account that only uses API tokens)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str] = mapped_column(String(64), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(Text, default="", server_default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A bearer token for the API, kept only as its SHA-256 (the token is shown once, when issued)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", name="fk_tokens_user"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsoleSession(Base):
    """A signed-in console session: the cookie's SHA-256, its CSRF token and when it ends."""

    __tablename__ = "console_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", name="fk_sessions_user"), index=True
    )
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccessRefusal(Base):
    """An access the service refused (no or bad credentials, a role without the right, another
    agency's batch, a bad CSRF token): who, what and why, for the auditors."""

    __tablename__ = "access_refusals"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    username: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16), default="")
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    client: Mapped[str] = mapped_column(String(64), default="")
    # The same refusal again from the same client within a minute is counted here, not added: a
    # flood of refusals cannot push the rest out of the auditors' view.
    repeats: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AccountEvent(Base):
    """A change of who may do what: a user added, disabled or enabled, a password set, an API token
    issued or revoked; with who did it (a user, or `host:NAME` for the operator's command line) and
    through what. Each is ledgered (entry kind `account`)."""

    __tablename__ = "account_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    via: Mapped[str] = mapped_column(String(16))  # console | api | host
    ledger_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class DataRead(Base):
    """One read of taxpayer information through the service, with the audit record's fields of IRS
    Publication 1075 (when, who, the event, the object, success or failure, the origin)."""

    __tablename__ = "data_reads"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    object: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure
    origin: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")


class RateCount(Base):
    """Hits per key per second (sign-ins per client, uploads per requester), kept in the store so
    that every server on one store counts the same hits."""

    __tablename__ = "rate_counts"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    second: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False
    )  # since the epoch
    hits: Mapped[int] = mapped_column(Integer)


class Submission(Base):
    """A batch uploaded to the service: its files on disk and how far processing has got. Processing
    is done by a worker; one left `running` by a stopped server is queued again on start, and the
    pipeline resumes the batch from its mark."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", name="fk_submissions_user"), index=True
    )
    agency: Mapped[str] = mapped_column(String(64), index=True)
    batch_ref: Mapped[str] = mapped_column(String(200))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    rows_sha256: Mapped[str] = mapped_column(String(64))
    rows_bytes: Mapped[int] = mapped_column(BigInteger)
    folder: Mapped[str] = mapped_column(Text)
    manifest_file: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | running | done | failed
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", name="fk_submissions_batch"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A worker holds a running submission by a lease it renews; a lease that lapses means the worker
    # died, and the submission is taken again, up to a limit (a batch that kills workers is failed).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_owner: Mapped[str] = mapped_column(String(64), default="", server_default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
