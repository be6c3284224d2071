"""The requester's history: what a batch's figures count besides the batch itself.

A requester who splits one datafile into small batches must not evade a rule that the whole file
would fail (26 U.S.C. § 6103(i)(2)(A), (B)(iv); (p)(3)(A)). So every batch's requests leave their
keys in the store (`request_keys`: request id, person and case, officer, case number, reason text,
folded as the in-batch figures fold them and hashed), and each batch's figures count the agency's
earlier batches too:

- cases per engaged officer and uses of one reason text: the agency's batches whose as-of date is
  within the policy's window before this batch's (`[history] window_days`), this batch included;
- duplicates of a request id or of person + case: any earlier batch, for ever, where that earlier
  request was answered or is pending (DISCLOSED, HELD, REVIEW, or not yet decided). A request that
  was refused or not disclosed may be sent again, corrected, under the same id.

"Earlier" is the order in which batches registered their keys. Registration and the figures are one
transaction under the agency's lock (PostgreSQL: an advisory lock; SQLite: its one writer), so of two
batches decided at once the second sees the first's rows, whatever has been decided of them.
`taxgate replay` and `taxgate audit` read the same figures as of each batch's own registration and
date. Everything is counted in the store with indexed SQL; nothing of the past is read into Python.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import select, text

from taxgate.rules import KEY_COLUMNS
from taxgate.store import Store
from taxgate.store.models import Batch, RequestKey

# Outcomes that answered a request (or will): a second request like it is a duplicate.
STANDING = ("DISCLOSED", "HELD", "REVIEW")


def key_of(folded: str) -> int | None:
    """The stored key of one folded value (as `rules.KEYS_SQL` computes it)."""
    return int(hashlib.md5(folded.encode()).hexdigest()[:15], 16) if folded else None


def scope_of(agency: str, practice: str) -> str:
    return f"{agency}|{practice}"


@dataclass(frozen=True)
class Figures:
    """What the history says about one batch, as DuckDB tables' rows (Arrow)."""

    officials: pa.Table  # official_key, cases, since, first_batch
    reasons: pa.Table  # relevance_key, uses, since, first_batch
    earlier: pa.Table  # row_number, request_batch, person_case_batch (ids of an earlier batch, or null)
    batches: pa.Table  # batch_id, batch_ref: the batches the figures name

    @classmethod
    def none(cls) -> Figures:
        """No history: every figure is the batch's own."""
        return cls(*(_table(*fields, rows=[]) for fields in _FIELDS))

    def into(self, con: duckdb.DuckDBPyConnection) -> None:
        """As the tables `rules.ROW_STATS_SQL` reads: history_officials, _reasons, _earlier, _batches."""
        for name, table in (("officials", self.officials), ("reasons", self.reasons), ("earlier", self.earlier),
                            ("batches", self.batches)):
            con.register("_history_arrow", table)
            con.execute(f"CREATE OR REPLACE TABLE history_{name} AS SELECT * FROM _history_arrow")
            con.unregister("_history_arrow")


@dataclass(frozen=True)
class History:
    """The agency's recorded requests, as one batch is judged against them."""

    store: Store
    batch_id: int
    scope: str
    as_of: date
    window_days: int

    @property
    def since(self) -> date:
        return self.as_of - timedelta(days=self.window_days)

    def figures(self, con: duckdb.DuckDBPyConnection, register: bool = True) -> Figures:
        """The batch's keys (DuckDB table `batch_keys`, from `rules.KEYS_SQL`) registered (once; `register=False` for an audit, which reads a batch
        registered before), then its figures, in one transaction under the scope's lock."""
        with self.store.session.begin() as session:
            connection = session.connection()
            if self.store.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": key_of("request_keys|" + self.scope)})
            bounds = self._bounds(connection)
            if bounds is None:
                if not register:
                    raise LookupError(f"batch {self.batch_id} registered no requests")
                self._register(connection, con.sql("SELECT * FROM batch_keys ORDER BY row_number").to_arrow_table())
                bounds = self._bounds(connection) or (0, 0)
            first, last = bounds
            params = {"scope": self.scope, "since": self.since.isoformat(), "batch": self.batch_id,
                      "first": first, "last": last}
            officials = connection.execute(text(_OFFICIALS), params).all()
            reasons = connection.execute(text(_REASONS), params).all()
            earlier = {}
            for column, key in (("request_batch", "request_key"), ("person_case_batch", "person_case_key")):
                for row_number, batch_id in connection.execute(text(_EARLIER.format(key=key)), params):
                    earlier.setdefault(row_number, {})[column] = batch_id
            named = {b for *_, b in officials} | {b for *_, b in reasons} | {
                b for row in earlier.values() for b in row.values()}
            refs = dict(connection.execute(select(Batch.id, Batch.batch_ref).where(Batch.id.in_(named))).all()) if named else {}
        rows = (officials, reasons, [(r, e.get("request_batch"), e.get("person_case_batch"))
                                     for r, e in earlier.items()], list(refs.items()))
        return Figures(*(_table(*fields, rows=r) for fields, r in zip(_FIELDS, rows)))

    def _bounds(self, connection) -> tuple[int, int] | None:
        first, last = connection.execute(
            select(text("min(id)"), text("max(id)")).select_from(RequestKey.__table__)
            .where(RequestKey.batch_id == self.batch_id)).one()
        return None if first is None else (first, last)

    def _register(self, connection, keys: pa.Table) -> None:
        columns = ("batch_id", "row_number", "scope", "as_of", *KEY_COLUMNS)
        scope, as_of = self.scope, self.as_of.isoformat()
        values = [keys[c].to_pylist() for c in ("row_number", *KEY_COLUMNS)]
        rows = [(self.batch_id, r, scope, as_of, *k) for r, *k in zip(*values)]
        if not rows:
            return
        if self.store.dialect == "postgresql":  # COPY: the store's bulk path
            cursor = connection.connection.driver_connection.cursor()
            with cursor.copy(f"COPY request_keys ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            connection.connection.driver_connection.executemany(
                f"INSERT INTO request_keys ({', '.join(columns)}) VALUES ({marks})", rows)


_FIELDS = (
    (("official_key", pa.int64()), ("cases", pa.int64()), ("since", pa.string()), ("first_batch", pa.int64())),
    (("relevance_key", pa.int64()), ("uses", pa.int64()), ("since", pa.string()), ("first_batch", pa.int64())),
    (("row_number", pa.int64()), ("request_batch", pa.int64()), ("person_case_batch", pa.int64())),
    (("batch_id", pa.int64()), ("batch_ref", pa.string())),
)


def _table(*fields: tuple[str, pa.DataType], rows: list) -> pa.Table:
    schema = pa.schema(list(fields))
    return pa.table({f.name: pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)},
                    schema=schema)


# Distinct cases per officer of this batch, over the scope's rows in the window registered up to this
# batch's last (this batch's own included): the union, so a case in two batches counts once.
_OFFICIALS = """
SELECT h.official_key, count(DISTINCT h.case_key), min(h.as_of), min(h.batch_id)
FROM request_keys h
WHERE h.scope = :scope AND h.as_of >= :since AND h.id <= :last AND h.case_key IS NOT NULL
  AND h.official_key IN (SELECT official_key FROM request_keys WHERE batch_id = :batch AND official_key IS NOT NULL)
GROUP BY h.official_key
"""
_REASONS = """
SELECT h.relevance_key, count(*), min(h.as_of), min(h.batch_id)
FROM request_keys h
WHERE h.scope = :scope AND h.as_of >= :since AND h.id <= :last
  AND h.relevance_key IN (SELECT relevance_key FROM request_keys WHERE batch_id = :batch AND relevance_key IS NOT NULL)
GROUP BY h.relevance_key
"""
# This batch's rows with a key that an earlier batch's request had, where that request was answered,
# is pending, or is not decided yet.
_EARLIER = f"""
SELECT m.row_number, min(h.batch_id)
FROM request_keys m
JOIN request_keys h ON h.scope = m.scope AND h.{{key}} = m.{{key}} AND h.id < :first
LEFT JOIN decisions d ON d.batch_id = h.batch_id AND d.row_number = h.row_number
WHERE m.batch_id = :batch AND m.{{key}} IS NOT NULL
  AND (d.outcome IS NULL OR d.outcome IN ({", ".join(f"'{o}'" for o in STANDING)}))
GROUP BY m.row_number
"""
