"""Identify: find the one taxpayer a request is about, only when the evidence is positive.

Scoring is Splink (Fellegi–Sunter) with the trained model in `identify/model/`, run on the same
DuckDB connection as the rest of the pipeline: each request is compared with every address the
taxpayer filed from, and the best pair per taxpayer is kept. The decision (docs/DESIGN.md "Positive
identification") is then one SQL query of named rules, `identify.decision`:

1. one best candidate, ahead of the runner-up by the policy margin in match-weight space;
2. given name and surname agree after normalising (`normalize.name`, rule 2 as a SQL macro), or
   one is misspelled and the same date of birth stands beside it;
3. the requester's address is one the candidate filed from, allowing a typing error in the street;
   a TIN alone never suffices (TIN is a blocking key only so that a contradiction can veto);
4. a supplied TIN equals the candidate's, and a supplied date of birth does not contradict it
   (a typing error is not a contradiction; a generation apart is);
5. the weight clears the policy threshold; near it the request goes to REVIEW.
Every decision keeps its evidence: the rule, the facts it read, candidate, runner-up, per-field
comparison levels and weights.

On Spark (`TAXGATE_MATCH_BACKEND=spark`) both halves run there: Splink scores on Spark, and the same
decision query, its DuckDB text translated by `identify.dialects`, decides there; only one row per
request comes back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from taxgate.domain import REQUEST_COLUMNS, ReasonCode, Request
from taxgate.identify.decision import decision_macros, decision_sql, define_decision_macros
from taxgate.identify.features import FEATURE_COLUMNS, request_feature_columns
from taxgate.identify.master import MasterError, addresses_to_release, load_master
from taxgate.identify.splink_settings import trained_settings
from taxgate.normalize.name import define_names_agree, nickname_table
from taxgate.policy import IdentificationRules

MODEL_FILE = Path(__file__).parent / "model" / "taxgate-id-2.json"
MODEL_VERSION = MODEL_FILE.stem

__all__ = [
    "FEATURE_COLUMNS",
    "MODEL_VERSION",
    "Identification",
    "MasterError",
    "decide_scored",
    "decision_query",
    "from_row",
    "identify",
    "load_master",
    "master_frequencies",
    "match_by_tin",
    "addresses_to_release",
    "request_features",
    "request_feature_columns",
    "score_floor",
]


@dataclass(frozen=True, slots=True)
class Identification:
    row_number: int
    code: ReasonCode
    review: bool = False  # near the line: a disclosure officer decides
    matched_tin: str = ""  # the best candidate
    match_weight: float | None = None
    runner_up_tin: str = ""
    runner_up_weight: float | None = None
    evidence: dict | None = None


def request_features(request: Request) -> tuple[str, ...]:
    """The model's comparison columns for one request, in FEATURE_COLUMNS order
    (`request_feature_columns` of one row)."""
    columns = {name: [getattr(request, name)] for name in REQUEST_COLUMNS}
    return tuple(column[0] for column in request_feature_columns(columns, [0]))


def identify(
    con: duckdb.DuckDBPyConnection,
    policy: IdentificationRules,
    model: Path = MODEL_FILE,
    backend: str | None = None,
) -> None:
    """Identify every row of table `id_requests` (row_number + FEATURE_COLUMNS) against
    `master_addresses` (made by `load_master`) into the temporary table `id_decisions`, one row per
    request with the columns of `_NO_DECISIONS` (evidence is a struct). Splink scores on DuckDB (this connection) or on
    Spark (`backend="spark"`, or TAXGATE_MATCH_BACKEND=spark): one model, one decision.

    The decision is one SQL query over the scored pairs, so nothing per request passes through
    Python and DuckDB spills to disk rather than growing memory with the batch."""
    con.execute(
        f"""CREATE OR REPLACE VIEW id_left AS SELECT 'R' || row_number AS unique_id,
            {", ".join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)} FROM id_requests"""
    )
    if con.execute("SELECT count(*) FROM id_left").fetchall()[0][0] == 0:
        con.execute(f"CREATE OR REPLACE TEMP TABLE id_decisions AS {_NO_DECISIONS}")
        return
    # Both sides must carry the same columns for Splink: the comparison columns and the id.
    con.execute(
        f"CREATE OR REPLACE VIEW id_right AS SELECT unique_id, {', '.join(FEATURE_COLUMNS)} FROM master_addresses"
    )
    backend = backend or os.environ.get("TAXGATE_MATCH_BACKEND", "duckdb")
    if backend not in ("duckdb", "spark"):
        raise ValueError(f"unknown match backend {backend!r}: use duckdb or spark")
    settings = trained_settings(model, backend)
    if backend == "spark":
        _identify_spark(con, settings, policy)
    else:
        decide_scored(con, _score_duckdb(con, settings, score_floor(policy)), settings, policy)


def score_floor(policy: IdentificationRules) -> float:
    """The lowest match weight worth keeping: a pair below it can be neither a candidate nor a
    runner-up that matters."""
    return min(policy.review, policy.threshold - policy.margin) - 1.0


def decide_scored(
    con: duckdb.DuckDBPyConnection, predictions: str, settings: dict, policy: IdentificationRules
) -> None:
    """The decision (`identify.decision`) over the scored pairs in table `predictions`, into `id_decisions`."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE id_decisions AS {decision_query(con, predictions, settings, policy)}"
    )


def decision_query(
    con: duckdb.DuckDBPyConnection,
    predictions: str,
    settings: dict,
    policy: IdentificationRules,
    sides: tuple[str, str] | None = None,
) -> str:
    """The decision's SQL over table `predictions`, its macros defined on `con`. `sides`: the suffixes
    of the request's and the master's columns, read from the pairs when not given."""
    if sides is None:
        sides = _sides(
            con.execute(f"SELECT source_dataset_l FROM {predictions} LIMIT 1").fetchall()
        )
    define_names_agree(con, policy.nicknames)
    define_decision_macros(con)
    return _decision_sql(predictions, settings, policy, sides)


def _sides(first: list) -> tuple[str, str]:
    """Splink puts the datasets on the sides in an order of its choosing; read from the first pair."""
    return ("l", "r") if first and first[0][0] == "requests" else ("r", "l")


def _decision_sql(
    predictions: str, settings: dict, policy: IdentificationRules, sides: tuple[str, str]
) -> str:
    comparisons = [c["output_column_name"] for c in settings["comparisons"]]
    tf_adjusted = {
        c["output_column_name"]
        for c in settings["comparisons"]
        if any(level.get("tf_adjustment_column") for level in c["comparison_levels"])
    }
    # Each field's level, weight and term-frequency adjustment for the deciding pair.
    fields = ", ".join(
        f"{c} := struct_pack(level := gamma_{c}, weight := tg_weight(mw_{c}), "
        f"tf := {f'tg_weight(coalesce(mw_tf_adj_{c}, 0.0))' if c in tf_adjusted else 'CAST(0 AS DOUBLE)'})"
        for c in comparisons
    )
    q, m = sides
    return decision_sql(predictions, q, m, fields, policy.threshold, policy.review, policy.margin)


def match_by_tin(con: duckdb.DuckDBPyConnection) -> None:
    """The 2025 script's TIN path (rule set `as-practised-2025`, for replay and audit only): a request
    whose supplied TIN is in the master is taken as that taxpayer, with code ID_TIN_MATCH, whatever
    its name and address say. Rows of `id_decisions` with such a TIN are replaced; others stay."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE id_decisions AS
        WITH tins AS (SELECT tin FROM last_known),  -- every TIN the master holds
        by_tin AS (
            SELECT q.row_number, t.tin FROM id_requests q JOIN tins t ON nullif(q.tin, '') = t.tin
        )
        SELECT row_number, 'ID_TIN_MATCH' AS code, false AS review, tin AS matched_tin,
               CAST(NULL AS DOUBLE) AS match_weight, '' AS runner_up_tin, CAST(NULL AS DOUBLE) AS runner_up_weight,
               struct_pack(decision := 'ID_TIN_MATCH', path := 'tin') AS evidence
        FROM by_tin
        UNION ALL BY NAME
        SELECT * FROM id_decisions WHERE row_number NOT IN (SELECT row_number FROM by_tin)
        """
    )


_NO_DECISIONS = """SELECT CAST(NULL AS BIGINT) AS row_number, CAST(NULL AS VARCHAR) AS code,
    CAST(NULL AS BOOLEAN) AS review,
    CAST(NULL AS VARCHAR) AS matched_tin, CAST(NULL AS DOUBLE) AS match_weight, CAST(NULL AS VARCHAR) AS runner_up_tin,
    CAST(NULL AS DOUBLE) AS runner_up_weight, CAST(NULL AS VARCHAR) AS evidence WHERE false"""


def from_row(row: dict) -> Identification:
    """An Identification back from a row of table `id_decisions`."""
    return Identification(
        row["row_number"],
        ReasonCode(row["code"]),
        bool(row["review"]),
        row["matched_tin"] or "",
        row["match_weight"],
        row["runner_up_tin"] or "",
        row["runner_up_weight"],
        row["evidence"] or None,
    )


def _tf_columns(settings: dict) -> list[str]:
    return sorted(
        {
            level["tf_adjustment_column"]
            for c in settings["comparisons"]
            for level in c["comparison_levels"]
            if level.get("tf_adjustment_column")
        }
    )


def master_frequencies(con: duckdb.DuckDBPyConnection, settings: dict) -> list[str]:
    """Term frequencies from the master alone, as tables `tf_master_<column>` (Splink's form: the
    value and its share). Splink would count them over requests and master together, so that one
    request's weight would depend on which other requests came in its batch; counted over the
    population, a request scores the same in any batch, or alone."""
    columns = _tf_columns(settings)
    for c in columns:  # once per master: `load_master` drops them, a batch's next block reuses them
        con.execute(
            f"""CREATE TEMP TABLE IF NOT EXISTS tf_master_{c} AS
                SELECT {c}, CAST(count(*) AS DOUBLE) / (SELECT count({c}) FROM master_addresses) AS tf_{c}
                FROM master_addresses WHERE {c} IS NOT NULL GROUP BY {c}"""
        )
    return columns


def _score_duckdb(con: duckdb.DuckDBPyConnection, settings: dict, floor: float) -> str:
    """Score on this DuckDB connection; returns the predictions table's name."""
    from splink import DuckDBAPI, Linker

    db = DuckDBAPI(connection=con)
    linker = Linker(
        [
            db.register("id_left", dataset_display_name="requests"),
            db.register("id_right", dataset_display_name="master"),
        ],
        settings,
        log_level=logging.WARNING,
    )
    for c in master_frequencies(con, settings):
        linker.table_management.register_term_frequency_lookup(db.register(f"tf_master_{c}"), c)
    return linker.inference.predict(
        threshold_match_weight=floor, warning_mode="never"
    ).physical_name


def _identify_spark(
    con: duckdb.DuckDBPyConnection, settings: dict, policy: IdentificationRules
) -> None:
    """Score and decide on Spark: Splink scores the pairs there, and the decision's query, translated
    from the DuckDB text (`identify.dialects`), decides there. Only the decisions, one row per
    request, come back into this connection, as `id_decisions`."""
    from taxgate.identify.spark import session

    spark = session()
    before = {t.name for t in spark.catalog.listTables() if t.isTemporary}
    try:
        _score_and_decide_on_spark(spark, con, settings, policy)
    finally:  # the session outlives the batch: Splink refuses to register a table whose name is taken
        for view in {t.name for t in spark.catalog.listTables() if t.isTemporary} - before:
            spark.catalog.dropTempView(view)


def _score_and_decide_on_spark(
    spark, con: duckdb.DuckDBPyConnection, settings: dict, policy: IdentificationRules
) -> None:
    from splink import Linker, SparkAPI

    from taxgate.identify.dialects import to_spark

    db = SparkAPI(spark_session=spark)

    def to_spark_frame(table: str):
        return spark.createDataFrame(con.sql(f"SELECT * FROM {table}").to_arrow_table())

    inputs = [
        db.register(to_spark_frame(table), dataset_display_name=name)
        for table, name in (("id_left", "requests"), ("id_right", "master"))
    ]
    linker = Linker(inputs, settings, log_level=logging.WARNING)
    for c in master_frequencies(con, settings):  # the same frequencies, made here, scored there
        linker.table_management.register_term_frequency_lookup(
            db.register(to_spark_frame(f"tf_master_{c}")), c
        )
    predicted = linker.inference.predict(
        threshold_match_weight=score_floor(policy), warning_mode="never"
    )
    predicted.as_spark_dataframe().createOrReplaceTempView("tg_predictions")
    to_spark_frame("id_requests").createOrReplaceTempView("id_requests")
    spark.createDataFrame(nickname_table(policy.nicknames)).createOrReplaceTempView("tg_nickname")
    sides = _sides(spark.sql("SELECT source_dataset_l FROM tg_predictions LIMIT 1").collect())
    query = to_spark(_decision_sql("tg_predictions", settings, policy, sides), decision_macros())
    decided = spark.sql(query)
    # A NULL evidence struct leaves NULLs under the fields Spark calls not-null, which Arrow refuses.
    con.register("id_decisions_arrow", decided.to(_nullable(decided.schema)).toArrow())
    con.execute("CREATE OR REPLACE TEMP TABLE id_decisions AS SELECT * FROM id_decisions_arrow")
    con.unregister("id_decisions_arrow")


def _nullable(schema):
    """A Spark type with every field, however deep, allowed to be NULL."""
    from pyspark.sql import types

    if isinstance(schema, types.StructType):
        return types.StructType(
            [types.StructField(f.name, _nullable(f.dataType), True) for f in schema.fields]
        )
    if isinstance(schema, types.ArrayType):
        return types.ArrayType(_nullable(schema.elementType), True)
    if isinstance(schema, types.MapType):
        return types.MapType(schema.keyType, _nullable(schema.valueType), True)
    return schema
