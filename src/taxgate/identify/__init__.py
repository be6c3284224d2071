"""Identify: find the one taxpayer a request is about, only when the evidence is positive.

Scoring is Splink (Fellegi–Sunter) with the trained model in `identify/model/`, run on the same
DuckDB connection as the rest of the pipeline: each request is compared with every address the
taxpayer filed from, and the best pair per taxpayer is kept. The decision (DESIGN.md "Positive
identification") is then made here, in plain code:

1. one best candidate, ahead of the runner-up by the policy margin in match-weight space;
2. given name and surname agree after normalising (`normalize.name.names_agree`);
3. the requester's standardised address equals an address the candidate filed from; a TIN alone
   never suffices (TIN is a blocking key only so that a contradiction can veto);
4. a supplied TIN equals the candidate's, and a supplied date of birth does not contradict it;
5. the weight clears the policy threshold; near it the request goes to REVIEW.
Every decision keeps its evidence: candidate, runner-up, per-field comparison levels and weights.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate.domain import ReasonCode, Request
from taxgate.identify.features import FEATURE_COLUMNS, address_features, person_features
from taxgate.identify.master import MasterError, load_master, release_addresses
from taxgate.identify.settings import trained_settings
from taxgate.normalize.name import names_agree
from taxgate.policy import Identification as IdentificationRules

MODEL_FILE = Path(__file__).parent / "model" / "taxgate-id-1.json"
MODEL_VERSION = MODEL_FILE.stem

__all__ = [
    "DECISIONS", "FEATURE_COLUMNS", "MODEL_VERSION", "Identification", "MasterError", "from_row", "identify",
    "load_master", "release_addresses", "request_features",
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


def _side(prefix_request: str, prefix_master: str) -> str:
    """Splink orders a pair's sides by dataset; pick each column from the side it belongs to."""
    cols = ["unique_id", *FEATURE_COLUMNS]
    req = ", ".join(f"CASE WHEN source_dataset_l = 'requests' THEN {c}_l ELSE {c}_r END AS {prefix_request}{c}" for c in cols)
    mas = ", ".join(f"CASE WHEN source_dataset_l = 'requests' THEN {c}_r ELSE {c}_l END AS {prefix_master}{c}" for c in cols)
    return f"{req}, {mas}"


def identify(
    con: duckdb.DuckDBPyConnection,
    policy: IdentificationRules,
    out: Path,
    model: Path = MODEL_FILE,
    backend: str | None = None,
) -> None:
    """Identify every row of table `id_requests` (row_number + FEATURE_COLUMNS) against
    `master_addresses` (made by `load_master`); write one decision per row to the Parquet file `out`
    (DECISIONS schema, row order). Splink scores on DuckDB (this connection) or on Spark
    (`backend="spark"`, or TAXGATE_MATCH_BACKEND=spark): one model, one decision.

    Candidates are decided a chunk at a time, so memory does not grow with the batch."""
    con.execute(
        f"""CREATE OR REPLACE TABLE id_left AS SELECT 'R' || row_number AS unique_id,
            {', '.join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)} FROM id_requests"""
    )
    writer = pq.ParquetWriter(out, DECISIONS)
    if con.execute("SELECT count(*) FROM id_left").fetchall()[0][0] == 0:
        writer.close()
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
    evidence_cols = ", ".join(
        f"gamma_{c}, mw_{c}" + (f", mw_tf_adj_{c}" if c in tf_adjusted else f", 0.0 AS mw_tf_adj_{c}") for c in comparisons
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE id_candidates AS
        WITH pairs AS (
            SELECT match_weight, {_side('q_', 'm_')}, {evidence_cols}
            FROM {predictions}
        ), per_taxpayer AS (
            SELECT q_unique_id, m_tin,
                   max(match_weight) AS weight,
                   arg_max(struct_pack(m_unique_id, m_given, m_surname, m_dob, m_middle_initial, gamma_given,
                                       gamma_surname,
                                       -- each field's level, weight and term-frequency adjustment, as JSON
                                       fields := to_json(struct_pack({', '.join(
                                           f"{c} := struct_pack(level := gamma_{c}, weight := round(mw_{c}, 3), "
                                           f"tf := round(coalesce(mw_tf_adj_{c}, 0.0), 3))" for c in comparisons)}))),
                           match_weight) AS best_pair,
                   bool_or(q_address_key IS NOT NULL AND q_address_key = m_address_key
                           AND (q_zip5 = m_zip5 OR (q_city = m_city AND q_state = m_state))) AS address_on_record,
                   bool_or(q_address_key IS NOT NULL AND q_address_key = m_address_key) AS same_street_line,
                   -- Near: same house number and unit, same ZIP or city, a street spelled alike.
                   bool_or(q_house_number = m_house_number AND coalesce(q_unit, '') = coalesce(m_unit, '')
                           AND (q_zip5 = m_zip5 OR q_city = m_city)
                           AND jaro_winkler_similarity(q_street_name, m_street_name) >= 0.85) AS address_near,
                   any_value(q_given) AS q_given, any_value(q_surname) AS q_surname,
                   any_value(q_tin) AS q_tin, any_value(q_dob) AS q_dob, any_value(q_middle_initial) AS q_middle,
                   any_value(q_suffix) AS q_suffix, any_value(m_given) AS any_given,
                   any_value(m_surname) AS any_surname, any_value(m_dob) AS any_dob, any_value(m_suffix) AS any_suffix
            FROM pairs GROUP BY ALL
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY q_unique_id ORDER BY weight DESC, m_tin) AS rank,
                   -- every taxpayer who filed from (about) the requester's address, whatever their weight;
                   -- loose on purpose: it can only make a request ambiguous, never disclose one
                   list(struct_pack(tin := m_tin, given := any_given, surname := any_surname, dob := any_dob,
                                    suffix := any_suffix))
                       FILTER (WHERE address_on_record OR same_street_line OR address_near)
                       OVER (PARTITION BY q_unique_id) AS at_address
            FROM per_taxpayer
        )
        SELECT CAST(substr(q_unique_id, 2) AS BIGINT) AS row_number, rank, m_tin, weight, address_on_record,
               q_given, q_surname, q_tin, q_dob, best_pair, address_near, q_middle, at_address, q_suffix
        FROM ranked WHERE rank <= 2
        """
    )
    columns = ("row_number", "rank", "m_tin", "weight", "address_on_record", "q_given", "q_surname", "q_tin", "q_dob",
               "best_pair", "address_near", "q_middle", "at_address", "q_suffix")
    reader = con.sql(
        f"""SELECT r.row_number, {', '.join(f'c.{c}' for c in columns[1:])}
            FROM id_requests r LEFT JOIN id_candidates c USING (row_number) ORDER BY r.row_number, c.rank"""
    ).to_arrow_reader(20_000)
    # Names repeat (common names, families): decide each pair of names once per run.
    agree = lru_cache(maxsize=1 << 18)(partial(names_agree, nicknames=policy.nicknames))
    pending: list[tuple] = []  # the candidates of the row being read (a row may span two batches)
    decided: list[Identification] = []

    def flush(final: bool = False) -> None:
        if decided and (final or len(decided) >= 20_000):
            writer.write_table(pa.Table.from_pylist([_as_row(i) for i in decided], schema=DECISIONS))
            decided.clear()

    for batch in reader:
        for row in zip(*(batch.column(c).to_pylist() for c in columns)):
            if pending and row[0] != pending[0][0]:
                decided.append(_decide(pending[0][0], [p for p in pending if p[1] is not None], policy, agree))
                pending = []
                flush()
            pending.append(row)
    if pending:
        decided.append(_decide(pending[0][0], [p for p in pending if p[1] is not None], policy, agree))
    flush(final=True)
    writer.close()


DECISIONS = pa.schema([
    ("row_number", pa.int64()), ("code", pa.string()), ("review", pa.bool_()), ("matched_tin", pa.string()),
    ("match_weight", pa.float64()), ("runner_up_tin", pa.string()), ("runner_up_weight", pa.float64()),
    ("evidence", pa.string()),
])


class _Raw(str):
    """A JSON text to be embedded as it is (the query already wrote it)."""


def _evidence_json(evidence: dict) -> str:
    """One json.dumps per decision, with the query's JSON texts put in place afterwards."""
    raw = {key: value for key, value in evidence.items() if isinstance(value, _Raw)}
    text = json.dumps({key: (f"\0{key}\0" if key in raw else value) for key, value in evidence.items()}, sort_keys=True)
    for key, value in raw.items():
        text = text.replace(json.dumps(f"\0{key}\0"), value)
    return text


def _as_row(i: Identification) -> dict:
    return {"row_number": i.row_number, "code": i.code.value, "review": i.review, "matched_tin": i.matched_tin,
            "match_weight": i.match_weight, "runner_up_tin": i.runner_up_tin, "runner_up_weight": i.runner_up_weight,
            "evidence": _evidence_json(i.evidence) if i.evidence else None}


def from_row(row: dict) -> Identification:
    """An Identification back from a row of the decisions file."""
    return Identification(
        row["row_number"], ReasonCode(row["code"]), bool(row["review"]), row["matched_tin"] or "",
        row["match_weight"], row["runner_up_tin"] or "", row["runner_up_weight"],
        json.loads(row["evidence"]) if row["evidence"] else None,
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


def _decide(row_number: int, found: list[tuple], policy: IdentificationRules, agree) -> Identification:
    if not found:
        return Identification(row_number, ReasonCode.ID_NO_CANDIDATE)
    _, _, tin, weight, on_record, q_given, q_surname, q_tin, q_dob, pair, near, q_middle, at_address, q_suffix = found[0]
    runner_tin, runner_weight = (found[1][2], found[1][3]) if len(found) > 1 else ("", None)
    evidence = {
        "candidate": {"tin": tin, "address_row": pair["m_unique_id"], "weight": round(weight, 3),
                      "address_on_record": bool(on_record), "address_near": bool(near)},
        "runner_up": {"tin": runner_tin, "weight": None if runner_weight is None else round(runner_weight, 3)},
        # Each field's level, weight and term-frequency adjustment, built as JSON by the query.
        "fields": _Raw(pair["fields"]),
    }
    base = dict(matched_tin=tin, match_weight=weight, runner_up_tin=runner_tin, runner_up_weight=runner_weight,
                evidence=evidence)

    def result(code: ReasonCode, review: bool = False) -> Identification:
        evidence["decision"] = code.value + (" (review)" if review else "")
        return Identification(row_number, code, review, **base)

    if q_tin and tin != q_tin:
        return result(ReasonCode.ID_TIN_CONFLICT)
    if q_dob and pair["m_dob"] and q_dob != pair["m_dob"]:
        return result(ReasonCode.ID_DOB_CONFLICT)
    if runner_weight is not None and weight - runner_weight < policy.margin:
        return result(ReasonCode.ID_AMBIGUOUS)
    # Another taxpayer whose name agrees filed from the requester's address (father and son, a
    # namesake in a shared home), and nothing the request says (date of birth, suffix) rules them
    # out: no weight gap can tell the two apart, whatever noise opened it.
    def namesake(other: dict) -> bool:
        return (
            other["tin"] != tin
            and agree(q_given or "", q_surname or "", other["given"] or "", other["surname"] or "")
            and not (q_dob and other["dob"] and q_dob != other["dob"])
            and not (q_suffix and other["suffix"] != q_suffix)
        )

    namesakes = [other["tin"] for other in at_address or [] if namesake(other)]
    if namesakes:
        evidence["namesakes_at_address"] = namesakes
        return result(ReasonCode.ID_AMBIGUOUS)
    agreeing = agree(q_given or "", q_surname or "", pair["m_given"] or "", pair["m_surname"] or "")
    # Close but not agreeing: both names at some similarity level above "different" (a misspelling).
    close = pair.get("gamma_given", 0) > 0 and pair.get("gamma_surname", 0) > 0
    evidence["names_agree"] = agreeing
    if not on_record:
        # A street spelled a little differently at the same number and place is for a person to judge.
        if near and weight >= policy.review and (agreeing or close):
            return result(ReasonCode.ID_ADDRESS_NOT_ON_RECORD, review=True)
        return result(ReasonCode.ID_ADDRESS_NOT_ON_RECORD)
    # Rule 4 in spirit: a middle initial that contradicts is evidence of another person; a person decides.
    middle_conflict = bool(q_middle and pair["m_middle_initial"] and q_middle != pair["m_middle_initial"])
    evidence["middle_initial_conflict"] = middle_conflict
    if weight >= policy.threshold and agreeing and not middle_conflict:
        return result(ReasonCode.ID_POSITIVE)
    if weight >= policy.review and (agreeing or close):
        return result(ReasonCode.ID_WEAK, review=True)
    return result(ReasonCode.ID_WEAK)


