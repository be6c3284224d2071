"""One request at a time, for an urgent request: the model and the master loaded once, each request
then scored and decided as a batch would decide it, in milliseconds.

A batch goes through Splink's `predict`, which writes dozens of SQL statements per call; for one
request that is the whole cost. Here each statement is written once, when the `Identifier` is
made, and prepared; DuckDB still plans a prepared statement that reads a table again on every
EXECUTE, so on a handful of rows planning is most of what is left, and the optimiser passes that
cost more than they save are off on this connection. Per request:
- each blocking rule's key (the hash of the columns it makes equal) is looked up in an index on
  the master, and the rules themselves choose among what the keys found;
- Splink's real-time scoring SQL for the model (what `splink.internals.realtime.compare_records`
  builds, captured once) scores them, with the master's own term frequencies
  (`identify.master_frequencies`), as a batch scores them;
- the batch's decision query (`identify.decision_query`) decides.
tests/identify/test_identify_single.py holds the two paths to the same answer.

    identifier = Identifier(master_path, policy.identification)
    found = identifier.identify(request)          # an Identification, with its evidence
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from taxgate.domain import Request
from taxgate.identify import (
    FEATURE_COLUMNS,
    MODEL_FILE,
    Identification,
    decision_query,
    from_row,
    load_master,
    master_frequencies,
    request_features,
    score_floor,
)
from taxgate.identify.splink_settings import trained_settings
from taxgate.policy import IdentificationRules

_SCORING = "taxgate-single"
_PASSES_NOT_WORTH_IT = (
    "common_subexpressions,expression_rewriter,partial_aggregate_pushdown,projection_pullup,"
    "statistics_propagation"
)


class Identifier:
    """A loaded master and model that identify one request at a time (not safe to share across threads)."""

    def __init__(self, master: Path, policy: IdentificationRules, model: Path = MODEL_FILE):
        self._con = con = duckdb.connect()
        load_master(con, master)
        settings = trained_settings(model, "duckdb")
        frequencies = master_frequencies(con, settings)
        joins = " ".join(f"LEFT JOIN tf_master_{c} USING ({c})" for c in frequencies)
        tf = ", ".join(f"tf_{c}" for c in frequencies)
        rules = [
            rule["blocking_rule"] for rule in settings["blocking_rules_to_generate_predictions"]
        ]
        keys = [_blocking_key(rule) for rule in rules]
        columns = ", ".join(
            ["unique_id", *FEATURE_COLUMNS, *(f"tf_{c}" for c in frequencies), "source_dataset"]
        )
        # The master, with a key per blocking rule: the hash of the columns the rule makes equal.
        con.execute(f"""CREATE TEMP TABLE single_master AS SELECT unique_id, {
            ", ".join(FEATURE_COLUMNS)
        }, {tf},
                        'master' AS source_dataset, {
            ", ".join(f"{key or 'NULL'} AS tg_key_{i}" for i, key in enumerate(keys))
        }
                        FROM master_addresses {joins}""")
        for i, key in enumerate(keys):
            if key:
                con.execute(f"CREATE INDEX single_key_{i} ON single_master (tg_key_{i})")
        con.execute(
            f"CREATE TEMP TABLE id_requests (row_number BIGINT, {', '.join(f'{c} VARCHAR' for c in FEATURE_COLUMNS)})"
        )
        con.execute(f"""CREATE TEMP VIEW single_request AS SELECT 'R' || row_number AS unique_id,
                        {", ".join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)}, {tf},
                        'requests' AS source_dataset FROM id_requests {joins}""")
        con.execute("CREATE TEMP TABLE single_left AS SELECT * FROM single_request WHERE false")
        con.execute(
            f"CREATE TEMP TABLE single_right AS SELECT {columns} FROM single_master WHERE false"
        )
        # The candidates: a request's keys looked up in the master's indexes (an equality on one
        # indexed column is a point lookup; a scan of ten million rows is not), then the rules
        # themselves, so that a hash collision costs a comparison and never a pair.
        self._request_keys = (
            "SELECT " + ", ".join(key or "NULL" for key in keys) + " FROM single_left"
        )
        found = " UNION ".join(
            f"SELECT {columns} FROM single_master WHERE tg_key_{i} = ${i + 1}"
            if key
            else f"SELECT {columns} FROM single_master"  # a rule no key serves: all of the master, then the rule
            for i, key in enumerate(keys)
        )
        con.execute(
            f"PREPARE single_candidates AS INSERT INTO single_right SELECT r.* FROM ({found}) r, single_left l "
            "WHERE " + " OR ".join(f"({rule})" for rule in rules)
        )
        scoring = _scoring_sql(con, settings)
        con.execute(
            f"CREATE TEMP TABLE single_predictions AS SELECT * FROM ({scoring}) WHERE false"
        )
        con.execute(
            f"PREPARE single_score AS INSERT INTO single_predictions SELECT * FROM ({scoring}) "
            f"WHERE match_weight >= {score_floor(policy)!r}"
        )
        # DuckDB plans a statement that reads a table again on every EXECUTE (duckdb/duckdb#20885),
        # and on a handful of rows planning is the whole cost: these passes are the dearest and
        # gain nothing on so few rows. An optimiser pass never changes an answer, only its cost.
        con.execute(f"SET disabled_optimizers = '{_PASSES_NOT_WORTH_IT}'")
        con.execute(
            f"PREPARE single_decision AS "
            f"{decision_query(con, 'single_predictions', settings, policy, sides=('l', 'r'))}"
        )

    def identify(self, request: Request) -> Identification:
        for step in self.steps(request):
            found = step()
        return found

    def steps(self, request: Request):
        """The steps of `identify`, each a call to make in turn (the last returns the
        Identification): for a benchmark to time one by one."""
        return (lambda: self._take(request), self._candidates, self._score, self._decide)

    def _take(self, request: Request) -> None:
        con = self._con
        for table in ("id_requests", "single_left", "single_right", "single_predictions"):
            con.execute(f"DELETE FROM {table}")
        con.execute(
            f"INSERT INTO id_requests VALUES (?, {', '.join('?' for _ in FEATURE_COLUMNS)})",
            [request.row_number, *request_features(request)],
        )
        con.execute("INSERT INTO single_left SELECT * FROM single_request")

    def _candidates(self) -> None:
        keys = self._con.execute(self._request_keys).fetchall()[
            0
        ]  # integers or None, from DuckDB's own hash
        self._con.execute(
            f"EXECUTE single_candidates({', '.join('NULL' if k is None else str(int(k)) for k in keys)})"
        )

    def _score(self) -> None:
        self._con.execute("EXECUTE single_score")

    def _decide(self) -> Identification:
        return from_row(self._con.sql("EXECUTE single_decision").to_arrow_table().to_pylist()[0])

    def close(self) -> None:
        self._con.close()


_EQUAL = re.compile(r'l\."(\w+)" = r\."\1"')


def _blocking_key(rule: str) -> str | None:
    """The hash of the columns a blocking rule made only of equalities (`l."a" = r."a" AND ...`)
    holds equal, as SQL over unqualified columns (NULL where one is missing: a missing value
    equals nothing); None for a rule of another form (it is then checked against every row)."""
    columns = _EQUAL.findall(rule)
    if not columns or re.sub(r"[()\s]|AND", "", _EQUAL.sub("", rule)):
        return None
    missing = " OR ".join(f"{c} IS NULL" for c in columns)
    return f"CASE WHEN {missing} THEN NULL ELSE hash({', '.join(columns)}) END"


def _scoring_sql(con: duckdb.DuckDBPyConnection, settings: dict) -> str:
    """Splink's real-time scoring SQL for this model, over tables `single_left` (the request) and
    `single_right` (its candidates). Splink builds it for `compare_records` and keeps it under a
    key; it is read from there once and pointed at the two tables."""
    from splink import DuckDBAPI
    from splink.internals import realtime

    empty = (
        con.sql("SELECT * FROM single_left").to_arrow_table(),
        con.sql("SELECT * FROM single_right").to_arrow_table(),
    )
    realtime.compare_records(*empty, settings, DuckDBAPI(connection=con), sql_cache_key=_SCORING)
    sql, uid = realtime._sql_cache._cache[_SCORING]
    for (table,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%' || ? || '%'", [uid]
    ).fetchall():
        con.execute(f'DROP TABLE "{table}"')
    return sql.replace(f"__splink__compare_records_left_{uid}", "single_left").replace(
        f"__splink__compare_records_right_{uid}", "single_right"
    )
