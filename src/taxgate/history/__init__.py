"""The requester's history: what a batch's figures count besides the batch itself.

A requester who splits one datafile into small batches must not evade a rule that the whole file
would fail (26 U.S.C. § 6103(i)(2)(A), (B)(iv); (p)(3)(A)). So every batch's requests leave their
keys in the store (`history_*`: request id, person and case, officer and case number, reason text,
folded as the in-batch figures fold them and hashed; `rules.KEYS_SQL`), and each batch's figures
count the agency's earlier batches too:

- cases per engaged officer and uses of one reason text: the agency's batches dated, or arrived,
  within the policy's window before this batch (`[history] window_days`), this batch included;
- duplicates of a request id or of person + case: any earlier batch, for ever, where that earlier
  request was answered or is pending (DISCLOSED, HELD, REVIEW, or not yet decided). A request that
  was refused or not disclosed may be sent again, corrected, under the same id.

"Earlier" is the order in which batches registered (`history_batches.seq`). Registration and the
figures are one transaction under the scope's lock (PostgreSQL: an advisory lock; SQLite: its one
writer), so of two batches decided at once the second sees the first's rows, whatever has been
decided of them. `taxgate replay` and `taxgate audit` read the same figures as of each batch's own
registration and date. Everything is counted in the store, one clustered-index range per key of the
batch's; nothing of the past is read into Python but the figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pyarrow as pa
from sqlalchemy import func, select, text

from taxgate.store import Store
from taxgate.store.bulk import driver_cursor
from taxgate.store.models import Batch, HistoryBatch, HistoryScope

# Outcomes that answered a request (or will): a second request like it is a duplicate. A REVIEW an
# officer declined answered nothing.
STANDING = ("DISCLOSED", "HELD", "REVIEW")
CHUNK = 10_000  # keys per lookup: one index range each, in key order


def key_of(folded: str) -> int | None:
    """The stored key of one folded value (as `rules.KEYS_SQL` computes it)."""
    return int(hashlib.md5(folded.encode()).hexdigest()[:15], 16) if folded else None


def scope_of(agency: str, practice: str) -> str:
    return f"{agency}|{practice}"


_FIELDS = (
    (
        ("official_key", pa.int64()),
        ("cases", pa.int64()),
        ("since", pa.string()),
        ("first_batch", pa.int64()),
    ),
    (
        ("relevance_key", pa.int64()),
        ("uses", pa.int64()),
        ("since", pa.string()),
        ("first_batch", pa.int64()),
    ),
    (("request_key", pa.int64()), ("batch_id", pa.int64())),
    (("person_case_key", pa.int64()), ("batch_id", pa.int64())),
    (("batch_id", pa.int64()), ("batch_ref", pa.string())),
)
_NAMES = ("officials", "reasons", "earlier_requests", "earlier_person_cases", "batches")


@dataclass(frozen=True)
class Figures:
    """What the history says about one batch's keys, as Arrow tables for `rules.ROW_STATS_SQL`."""

    officials: (
        pa.Table
    )  # official_key, cases, since, first_batch: over the window, this batch included
    reasons: (
        pa.Table
    )  # relevance_key, uses, since, first_batch: in the window's earlier batches (uses add up)
    earlier_requests: pa.Table  # request_key, batch_id: an earlier answered or pending request
    earlier_person_cases: pa.Table  # person_case_key, batch_id: likewise
    batches: pa.Table  # batch_id, batch_ref: the batches the figures name

    @classmethod
    def none(cls) -> Figures:
        """No history: every figure is the batch's own."""
        return cls(*(_table(fields, []) for fields in _FIELDS))

    def into(self, con: duckdb.DuckDBPyConnection) -> None:
        """As the tables `rules.ROW_STATS_SQL` reads: history_officials, history_reasons, ..."""
        for name in _NAMES:
            con.register("_history_arrow", getattr(self, name))
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
    received: date | None = None  # the day the batch arrived (its as-of date when not given)

    @property
    def since(self) -> date:
        return self.as_of - timedelta(days=self.window_days)

    def figures(self, con: duckdb.DuckDBPyConnection) -> Figures:
        """The batch's keys (DuckDB table `batch_keys`, from `rules.KEYS_SQL`) registered once, then
        its figures, in one transaction under the scope's lock. A batch registered before (a run
        resumed, an audit) keeps its place: nothing registered after it counts."""
        with self.store.session.begin() as session:
            connection = session.connection()
            if self.store.dialect == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": key_of("history|" + self.scope)},
                )
            scope = session.execute(
                select(HistoryScope.id).where(HistoryScope.scope == self.scope)
            ).scalar()
            if scope is None:
                numbered = HistoryScope(scope=self.scope)
                session.add(numbered)
                session.flush()
                scope = numbered.id
            placed = session.get(HistoryBatch, self.batch_id)
            fresh = placed is None
            if fresh:
                seq = (
                    session.execute(
                        select(func.coalesce(func.max(HistoryBatch.seq), 0)).where(
                            HistoryBatch.scope == self.scope
                        )
                    ).scalar_one()
                    + 1
                )
                count = con.execute("SELECT count(*) FROM batch_keys").fetchone()[0]
                placed = HistoryBatch(
                    batch_id=self.batch_id,
                    scope=self.scope,
                    seq=seq,
                    as_of=self.as_of.isoformat(),
                    received=(self.received or self.as_of).isoformat(),
                    requests=count,
                )
                session.add(placed)
                session.flush()
            arrived = date.fromisoformat(placed.received) - timedelta(days=self.window_days)
            window, earlier_window, earlier = batch_sets(scope, placed.seq, self.since, arrived)
            # What only earlier batches say is read before this batch's keys go in (measured: faster;
            # the pages are then the database file's, not the write-ahead log's).
            reasons = self._lookup(
                connection, con, _REASONS.replace(":window", earlier_window), "relevance_key", scope
            )
            earlier_requests = self._lookup(
                connection,
                con,
                _EARLIER.format(table="history_request_ids").replace(":earlier", earlier),
                "request_key",
                scope,
            )
            earlier_person_cases = self._lookup(
                connection,
                con,
                _EARLIER.format(table="history_person_cases").replace(":earlier", earlier),
                "person_case_key",
                scope,
            )
            if fresh:
                self._register(session, con, scope)
            # Distinct cases per officer are a union with this batch's own: read after they are in.
            officials = self._lookup(
                connection, con, _OFFICIALS.replace(":window", window), "official_key", scope
            )
            named = (
                {r[2] for r in officials}
                | {r[2] for r in reasons}
                | {r[1] for r in earlier_requests}
                | {r[1] for r in earlier_person_cases}
            )
            refs, dated = {}, {}
            for chunk in _slices(sorted(named)):
                for batch_id, ref, as_of in connection.execute(
                    select(Batch.id, Batch.batch_ref, HistoryBatch.as_of)
                    .join(HistoryBatch, HistoryBatch.batch_id == Batch.id)
                    .where(Batch.id.in_(chunk))
                ):
                    refs[batch_id], dated[batch_id] = ref, as_of
            officials = [(k, n, dated[first], first) for k, n, first in officials]
            reasons = [(k, n, dated[first], first) for k, n, first in reasons]
        rows = (officials, reasons, earlier_requests, earlier_person_cases, list(refs.items()))
        return Figures(*(_table(fields, r) for fields, r in zip(_FIELDS, rows)))

    def _register(self, session, con: duckdb.DuckDBPyConnection, scope: int) -> None:
        """One sorted insert per kind of key (the store's bulk path: COPY on PostgreSQL)."""
        batch = self.batch_id
        kinds = [
            (
                table,
                ("scope", "key", "batch_id", "row_number"),
                f"SELECT {scope}, {column}, {batch}, row_number FROM batch_keys WHERE {column} IS "
                "NOT NULL ORDER BY 2, 4",
            )
            for table, column in (
                ("history_request_ids", "request_key"),
                ("history_person_cases", "person_case_key"),
            )
        ]
        for table, columns, query in (
            *kinds,
            (
                "history_official_cases",
                ("scope", "official_key", "case_key", "batch_id"),
                f"SELECT DISTINCT {scope}, official_key, case_key, {batch} FROM batch_keys "
                "WHERE official_key IS NOT NULL AND case_key IS NOT NULL ORDER BY 2, 3",
            ),
            (
                "history_reasons",
                ("scope", "relevance_key", "batch_id", "uses"),
                f"SELECT {scope}, relevance_key, {batch}, count(*) FROM batch_keys WHERE relevance_key IS NOT NULL "
                "GROUP BY relevance_key ORDER BY 2",
            ),
        ):
            _bulk(
                session.connection(),
                self.store.dialect,
                table,
                columns,
                con.execute(query).fetchall(),
            )
        names = con.execute(
            f"SELECT {scope}, official_key, left(min(official_name), 200) FROM batch_keys "
            "WHERE official_key IS NOT NULL GROUP BY 2 ORDER BY 2"
        ).fetchall()
        if names:  # the first name an officer was written under stays
            marks = "?, ?, ?" if self.store.dialect == "sqlite" else "%s, %s, %s"
            with driver_cursor(session.connection()) as cursor:
                cursor.executemany(
                    f"INSERT INTO history_officers (scope, official_key, name) VALUES ({marks}) ON CONFLICT DO NOTHING",
                    names,
                )

    def _lookup(
        self, connection, con: duckdb.DuckDBPyConnection, query: str, column: str, scope: int
    ) -> list:
        """`query` for every distinct key of the batch's `column`, CHUNK keys at a time, in key order.
        Every value is an integer computed here (keys, batch ids, the scope's number), written into the
        statement as a literal: the driver gets it as it is, with nothing to bind or cache."""
        query = query.replace(":sk", str(int(scope)))
        out = []
        for keys in _chunks(con, column):
            out.extend(tuple(r) for r in connection.exec_driver_sql(query.replace(":keys", keys)))
        return out


def _chunks(con: duckdb.DuckDBPyConnection, column: str) -> Iterator[str]:
    reader = con.execute(
        f"SELECT DISTINCT {column} FROM batch_keys WHERE {column} IS NOT NULL ORDER BY 1"
    )
    while chunk := reader.fetchmany(CHUNK):
        yield ", ".join(str(int(k)) for (k,) in chunk)


def _bulk(
    connection, dialect: str, table: str, columns: tuple[str, ...], rows: list[tuple]
) -> None:
    if not rows:
        return
    with driver_cursor(connection) as cursor:
        if dialect == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


def _table(fields: tuple[tuple[str, pa.DataType], ...], rows: list) -> pa.Table:
    schema = pa.schema(list(fields))
    return pa.table(
        {f.name: pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)},
        schema=schema,
    )


def batch_sets(scope: int, seq: int, since: date, arrived: date) -> tuple[str, str, str]:
    """Which batches count, as subqueries of literals made here (the store builds each once per
    statement): (the window, this batch included; the window's earlier batches; every earlier batch).
    A batch is in the window on the date it claims or on the day it arrived, so that dating a batch
    far back does not take it out of its successors' window."""
    scoped = (
        "SELECT batch_id FROM history_batches"
        f" WHERE scope = (SELECT scope FROM history_scopes WHERE id = {int(scope)})"
    )
    in_window = f"(as_of >= '{since.isoformat()}' OR received >= '{arrived.isoformat()}')"
    return (
        f"{scoped} AND seq <= {int(seq)} AND {in_window}",
        f"{scoped} AND seq < {int(seq)} AND {in_window}",
        f"{scoped} AND seq < {int(seq)}",
    )


def _slices(items: list, size: int = 5_000) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# The batches a figure counts (`:window`): the scope's batches registered up to this one (itself
# included) dated, or arrived, within the window; a duplicate looks at every batch registered before
# this one (`:earlier`). Each query is driven by the batch's own keys (`:keys`), one clustered-index
# range each. Distinct cases per officer are the union over the batches, so a case in two counts once.
_OFFICIALS = """
SELECT official_key, count(DISTINCT case_key), min(batch_id)
FROM history_official_cases
WHERE scope = :sk AND official_key IN (:keys) AND batch_id IN (:window)
GROUP BY official_key
"""
_REASONS = """
SELECT relevance_key, sum(uses), min(batch_id)
FROM history_reasons
WHERE scope = :sk AND relevance_key IN (:keys) AND batch_id IN (:window)
GROUP BY relevance_key
"""
# The batch's keys that an earlier batch's request had, where that request was answered, is pending,
# or is not decided yet.
_EARLIER = f"""
SELECT h.key, min(h.batch_id)
FROM {{table}} h
LEFT JOIN decisions d ON d.batch_id = h.batch_id AND d.row_number = h.row_number
LEFT JOIN reviews r ON r.decision_id = d.id AND r.action = 'decline'
WHERE h.scope = :sk AND h.key IN (:keys) AND h.batch_id IN (:earlier)
  AND (d.outcome IS NULL OR d.outcome IN ({", ".join(f"'{o}'" for o in STANDING)})) AND r.id IS NULL
GROUP BY h.key
"""
