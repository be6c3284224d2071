"""One request at a time, for an urgent request: the model and the master loaded once, each request
then scored and decided as a batch would decide it, in milliseconds.

A batch goes through Splink's `predict`, which plans dozens of SQL statements per call; for one
request that planning is the whole cost. Here every statement is planned once, when the
`Identifier` is made, and only executed per request:
- the model's blocking rules, OR-ed in one scan, find the candidate pairs in the loaded master;
- Splink's real-time scoring SQL for the model (what `splink.internals.realtime.compare_records`
  builds, captured once) scores them, with the master's own term frequencies
  (`identify.master_frequencies`), as a batch scores them;
- the batch's decision query (`identify.decision_query`) decides.
tests/test_identify_single.py holds the two paths to the same answer.

    identifier = Identifier(master_path, policy.identification)
    found = identifier.identify(request)          # an Identification, with its evidence
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from taxgate.domain import Request
from taxgate.identify import (
    FEATURE_COLUMNS, MODEL_FILE, Identification, decision_query, from_row, load_master, master_frequencies,
    request_features, score_floor,
)
from taxgate.identify.settings import trained_settings
from taxgate.policy import Identification as IdentificationRules

_SCORING = "taxgate-single"


class Identifier:
    """A loaded master and model that identify one request at a time (not safe to share across threads)."""

    def __init__(self, master: Path, policy: IdentificationRules, model: Path = MODEL_FILE):
        self._con = con = duckdb.connect()
        load_master(con, master)
        settings = trained_settings(model, "duckdb")
        frequencies = master_frequencies(con, settings)
        joins = " ".join(f"LEFT JOIN tf_master_{c} USING ({c})" for c in frequencies)
        tf = ", ".join(f"tf_{c}" for c in frequencies)
        con.execute(f"""CREATE TEMP TABLE single_master AS SELECT unique_id, {', '.join(FEATURE_COLUMNS)}, {tf},
                        'master' AS source_dataset FROM master_addresses {joins}""")
        con.execute(f"CREATE TEMP TABLE id_requests (row_number BIGINT, {', '.join(f'{c} VARCHAR' for c in FEATURE_COLUMNS)})")
        con.execute(f"""CREATE TEMP VIEW single_request AS SELECT 'R' || row_number AS unique_id,
                        {', '.join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)}, {tf},
                        'requests' AS source_dataset FROM id_requests {joins}""")
        con.execute("CREATE TEMP TABLE single_left AS SELECT * FROM single_request WHERE false")
        con.execute("CREATE TEMP TABLE single_right AS SELECT * FROM single_master WHERE false")
        # The model's blocking rules as one statement: a pair any rule finds, found once.
        rules = [rule["blocking_rule"] for rule in settings["blocking_rules_to_generate_predictions"]]
        # One scan of the master with the rules OR-ed: for a single request, cheaper than a join per rule.
        con.execute("PREPARE single_candidates AS INSERT INTO single_right SELECT r.* FROM single_master r, single_left l "
                    "WHERE " + " OR ".join(f"({rule})" for rule in rules))
        scoring = _scoring_sql(con, settings)
        con.execute(f"CREATE TEMP TABLE single_predictions AS SELECT * FROM ({scoring}) WHERE false")
        con.execute(f"PREPARE single_score AS INSERT INTO single_predictions SELECT * FROM ({scoring}) "
                    f"WHERE match_weight >= {score_floor(policy)!r}")
        con.execute(f"PREPARE single_decision AS "
                    f"{decision_query(con, 'single_predictions', settings, policy, sides=('l', 'r'))}")

    def identify(self, request: Request) -> Identification:
        con = self._con
        for table in ("id_requests", "single_left", "single_right", "single_predictions"):
            con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO id_requests VALUES (?, {', '.join('?' for _ in FEATURE_COLUMNS)})",
                    [request.row_number, *request_features(request)])
        con.execute("INSERT INTO single_left SELECT * FROM single_request")
        con.execute("EXECUTE single_candidates")
        con.execute("EXECUTE single_score")
        return from_row(con.sql("EXECUTE single_decision").to_arrow_table().to_pylist()[0])

    def close(self) -> None:
        self._con.close()


def _scoring_sql(con: duckdb.DuckDBPyConnection, settings: dict) -> str:
    """Splink's real-time scoring SQL for this model, over tables `single_left` (the request) and
    `single_right` (its candidates). Splink builds it for `compare_records` and keeps it under a
    key; it is read from there once and pointed at the two tables."""
    from splink import DuckDBAPI
    from splink.internals import realtime

    empty = con.sql("SELECT * FROM single_left").to_arrow_table(), con.sql("SELECT * FROM single_right").to_arrow_table()
    realtime.compare_records(*empty, settings, DuckDBAPI(connection=con), sql_cache_key=_SCORING)
    sql, uid = realtime._sql_cache._cache[_SCORING]
    for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%' || ? || '%'",
                                [uid]).fetchall():
        con.execute(f'DROP TABLE "{table}"')
    return (sql.replace(f"__splink__compare_records_left_{uid}", "single_left")
               .replace(f"__splink__compare_records_right_{uid}", "single_right"))
