"""Identify: find the one taxpayer a request is about, only when the evidence is positive.

Scoring is Splink (Fellegi–Sunter) with the trained model in `identify/model/`, run on the same
DuckDB connection as the rest of the pipeline: each request is compared with every address the
taxpayer filed from, and the best pair per taxpayer is kept. The decision (DESIGN.md "Positive
identification") is then made here, in plain code:

1. one best candidate, ahead of the runner-up by the policy margin in match-weight space;
2. given name and surname agree after normalising (`normalize.name`, rule 2 as a SQL macro);
3. the requester's standardised address equals an address the candidate filed from; a TIN alone
   never suffices (TIN is a blocking key only so that a contradiction can veto);
4. a supplied TIN equals the candidate's, and a supplied date of birth does not contradict it;
5. the weight clears the policy threshold; near it the request goes to REVIEW.
Every decision keeps its evidence: candidate, runner-up, per-field comparison levels and weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from taxgate.domain import ReasonCode, Request
from taxgate.identify.features import FEATURE_COLUMNS, address_features, person_features
from taxgate.identify.master import MasterError, load_master, release_addresses
from taxgate.identify.settings import trained_settings
from taxgate.normalize.name import define_names_agree
from taxgate.policy import Identification as IdentificationRules

MODEL_FILE = Path(__file__).parent / "model" / "taxgate-id-1.json"
MODEL_VERSION = MODEL_FILE.stem

__all__ = [
    "DECISIONS", "FEATURE_COLUMNS", "MODEL_VERSION", "Identification", "MasterError", "from_row", "identify",
    "load_master", "match_by_tin", "release_addresses", "request_features",
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
    """The model's comparison columns for one request, in FEATURE_COLUMNS order."""
    return (
        *person_features(request.first_name, request.middle_name, request.last_name, request.suffix,
                         request.date_of_birth, request.tin),
        *address_features(request.street, request.unit, request.city, request.state, request.zip),
    )


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
            {', '.join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)} FROM id_requests"""
    )
    if con.execute("SELECT count(*) FROM id_left").fetchall()[0][0] == 0:
        con.execute(f"CREATE OR REPLACE TEMP TABLE id_decisions AS {_NO_DECISIONS}")
        return
    # Both sides must carry the same columns for Splink: the comparison columns and the id.
    con.execute(f"CREATE OR REPLACE VIEW id_right AS SELECT unique_id, {', '.join(FEATURE_COLUMNS)} FROM master_addresses")
    floor = min(policy.review, policy.threshold - policy.margin) - 1.0  # runner-ups below this cannot matter
    backend = backend or os.environ.get("TAXGATE_MATCH_BACKEND", "duckdb")
    if backend not in ("duckdb", "spark"):
        raise ValueError(f"unknown match backend {backend!r}: use duckdb or spark")
    settings = trained_settings(model, backend)
    predictions = _score_spark(con, settings, floor) if backend == "spark" else _score_duckdb(con, settings, floor)
    comparisons = [c["output_column_name"] for c in settings["comparisons"]]
    tf_adjusted = {c["output_column_name"] for c in settings["comparisons"]
                   if any(level.get("tf_adjustment_column") for level in c["comparison_levels"])}
    # Each field's level, weight and term-frequency adjustment for the deciding pair.
    fields = ", ".join(
        f"{c} := struct_pack(level := gamma_{c}, weight := round(mw_{c}, 3), "
        f"tf := {f'round(coalesce(mw_tf_adj_{c}, 0.0), 3)' if c in tf_adjusted else 'CAST(0 AS DOUBLE)'})" for c in comparisons
    )
    # Splink puts the datasets on the sides in an order of its choosing; read it from the pairs.
    sides = con.execute(f"SELECT source_dataset_l FROM {predictions} LIMIT 1").fetchall()
    q, m = ("l", "r") if sides and sides[0][0] == "requests" else ("r", "l")
    define_names_agree(con, policy.nicknames)
    decision = _DECISION_SQL.format(predictions=predictions, q=q, m=m, fields=fields, **_policy_values(policy))
    con.execute(f"CREATE OR REPLACE TEMP TABLE id_decisions AS {decision}")


def match_by_tin(con: duckdb.DuckDBPyConnection) -> None:
    """The 2025 script's TIN path (rule set `as-practised-2025`, for replay and audit only): a request
    whose supplied TIN is in the master is taken as that taxpayer, with code ID_TIN_MATCH, whatever
    its name and address say. Rows of `id_decisions` with such a TIN are replaced; others stay."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE id_decisions AS
        WITH tins AS (SELECT DISTINCT regexp_replace(tin, '[^0-9]', '', 'g') AS tin FROM master),
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


def _policy_values(policy: IdentificationRules) -> dict[str, str]:
    return {name: repr(float(getattr(policy, name))) for name in ("threshold", "review", "margin")}


_NO_DECISIONS = """SELECT CAST(NULL AS BIGINT) AS row_number, CAST(NULL AS VARCHAR) AS code, CAST(NULL AS BOOLEAN) AS review,
    CAST(NULL AS VARCHAR) AS matched_tin, CAST(NULL AS DOUBLE) AS match_weight, CAST(NULL AS VARCHAR) AS runner_up_tin,
    CAST(NULL AS DOUBLE) AS runner_up_weight, CAST(NULL AS VARCHAR) AS evidence WHERE false"""

# The decision (module docstring, rules 1-5): one query, one row per request in id_requests.
# Facts first, then one CASE in the rules' order; the evidence is every fact the CASE read.
_DECISION_SQL = """
WITH requests AS (
    SELECT row_number, 'R' || row_number AS q_unique_id, nullif(tin, '') AS q_tin, nullif(dob, '') AS q_dob,
        nullif(suffix, '') AS q_suffix, nullif(middle_initial, '') AS q_middle,
        tg_tokens(given) AS q_given, tg_tokens(surname) AS q_surname
    FROM id_requests
), per_taxpayer AS (
    -- each taxpayer's best pair over the addresses they filed from, and what those addresses say
    SELECT unique_id_{q} AS q_unique_id, tin_{m} AS m_tin, max(match_weight) AS weight,
        arg_max(rowid, match_weight) AS pair,  -- the best pair, read again below only where needed
        -- rule 3: the requester's standardised address equals one the taxpayer filed from
        coalesce(bool_or(address_key_{q} = address_key_{m}
                         AND (zip5_{q} = zip5_{m} OR (city_{q} = city_{m} AND state_{q} = state_{m}))), false) AS on_record,
        -- near: same house number and unit, same ZIP or city, a street spelled alike
        coalesce(bool_or(house_number_{q} = house_number_{m} AND coalesce(unit_{q}, '') = coalesce(unit_{m}, '')
                         AND (zip5_{q} = zip5_{m} OR city_{q} = city_{m})
                         AND jaro_winkler_similarity(street_name_{q}, street_name_{m}) >= 0.85), false) AS near,
        coalesce(bool_or(address_key_{q} = address_key_{m}), false) AS same_street_line
    FROM {predictions} GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER by_weight AS rank, lead(m_tin) OVER by_weight AS runner_tin,
        lead(weight) OVER by_weight AS runner_weight
    FROM per_taxpayer WINDOW by_weight AS (PARTITION BY q_unique_id ORDER BY weight DESC, m_tin)
), namesakes AS (
    -- another taxpayer whose name agrees filed from (about) the requester's address (father and son,
    -- a namesake in a shared home), and nothing the request says (date of birth, suffix) rules them
    -- out: no weight gap can tell the two apart, whatever noise opened it. Loose on purpose: this
    -- can only make a request ambiguous, never disclose one.
    SELECT q_unique_id, list(m_tin ORDER BY m_tin) AS namesakes
    FROM (
        SELECT r.q_unique_id, r.q_given, r.q_surname, other.m_tin, tg_tokens(p.given_{m}) AS o_given,
            tg_tokens(p.surname_{m}) AS o_surname
        FROM ranked best JOIN ranked other ON other.q_unique_id = best.q_unique_id AND other.m_tin <> best.m_tin
            JOIN requests r ON r.q_unique_id = best.q_unique_id JOIN {predictions} p ON p.rowid = other.pair
        WHERE best.rank = 1 AND (other.on_record OR other.same_street_line OR other.near)
            AND NOT coalesce(r.q_dob <> nullif(p.dob_{m}, ''), false)
            AND NOT (r.q_suffix IS NOT NULL AND r.q_suffix IS DISTINCT FROM nullif(p.suffix_{m}, ''))
    )
    WHERE tg_names_agree(q_given, q_surname, o_given, o_surname)
    GROUP BY q_unique_id
), candidates AS (
    SELECT r.*, b.* EXCLUDE (q_unique_id, rank), coalesce(n.namesakes, []) AS namesakes,
        p.unique_id_{m} AS m_unique_id, tg_tokens(p.given_{m}) AS m_given, tg_tokens(p.surname_{m}) AS m_surname,
        nullif(p.dob_{m}, '') AS m_dob, nullif(p.middle_initial_{m}, '') AS m_middle, p.gamma_given, p.gamma_surname,
        -- each field's level, weight and term-frequency adjustment for the deciding pair
        struct_pack({fields}) AS fields
    FROM requests r JOIN ranked b ON b.q_unique_id = r.q_unique_id AND b.rank = 1
        JOIN {predictions} p ON p.rowid = b.pair
        LEFT JOIN namesakes n ON n.q_unique_id = r.q_unique_id
), facts AS (
    SELECT *, coalesce(tg_names_agree(q_given, q_surname, m_given, m_surname), false) AS agreeing,
        -- close but not agreeing: both names at some similarity level above "different" (a misspelling)
        coalesce(gamma_given > 0 AND gamma_surname > 0, false) AS close,
        -- rule 4 in spirit: a middle initial that contradicts is evidence of another person
        coalesce(q_middle <> m_middle, false) AS middle_conflict
    FROM candidates
), decided AS (
    SELECT *, CASE
        WHEN q_tin IS NOT NULL AND q_tin IS DISTINCT FROM m_tin THEN 'ID_TIN_CONFLICT'
        WHEN coalesce(q_dob <> m_dob, false) THEN 'ID_DOB_CONFLICT'
        WHEN weight - runner_weight < {margin} THEN 'ID_AMBIGUOUS'
        WHEN len(namesakes) > 0 THEN 'ID_AMBIGUOUS'
        WHEN NOT on_record THEN 'ID_ADDRESS_NOT_ON_RECORD'
        WHEN weight >= {threshold} AND agreeing AND NOT middle_conflict THEN 'ID_POSITIVE'
        ELSE 'ID_WEAK' END AS code
    FROM facts
), reviewed AS (
    -- near the line, a disclosure officer decides: a street spelled a little differently at the same
    -- number and place, or a weak match whose names agree or nearly do
    SELECT *, weight >= {review} AND (agreeing OR close)
              AND ((code = 'ID_ADDRESS_NOT_ON_RECORD' AND near) OR code = 'ID_WEAK') AS review
    FROM decided
)
SELECT q.row_number, coalesce(d.code, 'ID_NO_CANDIDATE') AS code, coalesce(d.review, false) AS review,
    coalesce(d.m_tin, '') AS matched_tin, d.weight AS match_weight, coalesce(d.runner_tin, '') AS runner_up_tin,
    d.runner_weight AS runner_up_weight,
    CASE WHEN d.code IS NOT NULL THEN struct_pack(
        candidate := struct_pack(address_near := near, address_on_record := on_record,
                                 address_row := m_unique_id, tin := m_tin, weight := round(weight, 3)),
        decision := code || CASE WHEN review THEN ' (review)' ELSE '' END,
        fields := fields,
        middle_initial_conflict := middle_conflict,
        names_agree := agreeing,
        namesakes_at_address := namesakes,
        runner_up := struct_pack(tin := coalesce(runner_tin, ''), weight := round(runner_weight, 3))
    ) END AS evidence
FROM id_requests q LEFT JOIN reviewed d USING (row_number)
"""


def from_row(row: dict) -> Identification:
    """An Identification back from a row of table `id_decisions`."""
    return Identification(
        row["row_number"], ReasonCode(row["code"]), bool(row["review"]), row["matched_tin"] or "",
        row["match_weight"], row["runner_up_tin"] or "", row["runner_up_weight"],
        row["evidence"] or None,
    )


def _score_duckdb(con: duckdb.DuckDBPyConnection, settings: dict, floor: float) -> str:
    """Score on this DuckDB connection; returns the predictions table's name."""
    from splink import DuckDBAPI, Linker

    db = DuckDBAPI(connection=con)
    linker = Linker(
        [db.register("id_left", dataset_display_name="requests"), db.register("id_right", dataset_display_name="master")],
        settings,
        log_level=logging.WARNING,
    )
    return linker.inference.predict(threshold_match_weight=floor, warning_mode="never").physical_name


def _score_spark(con: duckdb.DuckDBPyConnection, settings: dict, floor: float) -> str:
    """Score on Spark; the predictions come back into this connection as table `spark_predictions`."""
    from splink import Linker, SparkAPI

    from taxgate.identify.spark import session

    spark = session()
    db = SparkAPI(spark_session=spark)
    inputs = [
        db.register(spark.createDataFrame(con.sql(f"SELECT * FROM {table}").to_arrow_table()), dataset_display_name=name)
        for table, name in (("id_left", "requests"), ("id_right", "master"))
    ]
    linker = Linker(inputs, settings, log_level=logging.WARNING)
    predicted = linker.inference.predict(threshold_match_weight=floor, warning_mode="never").as_spark_dataframe()
    con.register("spark_predictions_arrow", predicted.toArrow())
    con.execute("CREATE OR REPLACE TABLE spark_predictions AS SELECT * FROM spark_predictions_arrow")
    con.unregister("spark_predictions_arrow")
    return "spark_predictions"
