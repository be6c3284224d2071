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
from dataclasses import dataclass
from pathlib import Path

import duckdb

from taxgate.domain import ReasonCode, Request
from taxgate.identify.features import FEATURE_COLUMNS, address_features, person_features
from taxgate.identify.master import MasterError, last_known_addresses, load_master
from taxgate.normalize.name import names_agree
from taxgate.policy import Identification as IdentificationRules

MODEL_FILE = Path(__file__).parent / "model" / "taxgate-id-1.json"
MODEL_VERSION = MODEL_FILE.stem

__all__ = [
    "FEATURE_COLUMNS", "MODEL_VERSION", "Identification", "MasterError", "identify",
    "last_known_addresses", "load_master", "request_features",
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
    con: duckdb.DuckDBPyConnection, policy: IdentificationRules, model: Path = MODEL_FILE
) -> dict[int, Identification]:
    """Identify every row of table `id_requests` (row_number + FEATURE_COLUMNS) against
    `master_addresses` (made by `load_master`)."""
    from splink import DuckDBAPI, Linker

    con.execute(
        f"""CREATE OR REPLACE TABLE id_left AS SELECT 'R' || row_number AS unique_id,
            {', '.join(f"nullif({c}, '') AS {c}" for c in FEATURE_COLUMNS)} FROM id_requests"""
    )
    if con.execute("SELECT count(*) FROM id_left").fetchall()[0][0] == 0:
        return {}
    # Both sides must carry the same columns for Splink: the comparison columns and the id.
    con.execute(f"CREATE OR REPLACE VIEW id_right AS SELECT unique_id, {', '.join(FEATURE_COLUMNS)} FROM master_addresses")
    db = DuckDBAPI(connection=con)
    linker = Linker(
        [db.register("id_left", dataset_display_name="requests"),
         db.register("id_right", dataset_display_name="master")],
        str(model),
        log_level=logging.WARNING,
    )
    floor = min(policy.review, policy.threshold - policy.margin) - 1.0  # runner-ups below this cannot matter
    predictions = linker.inference.predict(threshold_match_weight=floor, warning_mode="never")
    comparisons = [c.output_column_name for c in linker._settings_obj.comparisons]
    tf_adjusted = {c.output_column_name for c in linker._settings_obj.comparisons if c._has_tf_adjustments}
    evidence_cols = ", ".join(
        f"gamma_{c}, mw_{c}" + (f", mw_tf_adj_{c}" if c in tf_adjusted else f", 0.0 AS mw_tf_adj_{c}") for c in comparisons
    )
    rows = con.execute(
        f"""
        WITH pairs AS (
            SELECT match_weight, {_side('q_', 'm_')}, {evidence_cols}
            FROM {predictions.physical_name}
        ), per_taxpayer AS (
            SELECT q_unique_id, m_tin,
                   max(match_weight) AS weight,
                   arg_max(struct_pack(m_unique_id, m_given, m_surname, m_dob, m_middle_initial,
                                       {', '.join(f'gamma_{c}, mw_{c}, mw_tf_adj_{c}' for c in comparisons)}),
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
        FROM ranked WHERE rank <= 2 ORDER BY row_number, rank
        """
    ).fetchall()
    candidates: dict[int, list[tuple]] = {}
    for row in rows:
        candidates.setdefault(row[0], []).append(row)
    results = {}
    for (row_number,) in con.execute("SELECT row_number FROM id_requests").fetchall():
        results[row_number] = _decide(row_number, candidates.get(row_number, []), policy, comparisons)
    return results


def _decide(row_number: int, found: list[tuple], policy: IdentificationRules, comparisons: list[str]) -> Identification:
    if not found:
        return Identification(row_number, ReasonCode.ID_NO_CANDIDATE)
    _, _, tin, weight, on_record, q_given, q_surname, q_tin, q_dob, pair, near, q_middle, at_address, q_suffix = found[0]
    runner_tin, runner_weight = (found[1][2], found[1][3]) if len(found) > 1 else ("", None)
    evidence = {
        "candidate": {"tin": tin, "address_row": pair["m_unique_id"], "weight": round(weight, 3),
                      "address_on_record": bool(on_record), "address_near": bool(near)},
        "runner_up": {"tin": runner_tin, "weight": None if runner_weight is None else round(runner_weight, 3)},
        # Each field's level and weight; `tf` is the term-frequency adjustment (rarer values weigh more).
        "fields": {c: {"level": pair[f"gamma_{c}"], "weight": round(pair[f"mw_{c}"], 3),
                       "tf": round(pair[f"mw_tf_adj_{c}"] or 0.0, 3)} for c in comparisons},
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
            and names_agree(q_given or "", q_surname or "", other["given"] or "", other["surname"] or "", policy.nicknames)
            and not (q_dob and other["dob"] and q_dob != other["dob"])
            and not (q_suffix and other["suffix"] != q_suffix)
        )

    namesakes = [other["tin"] for other in at_address or [] if namesake(other)]
    if namesakes:
        evidence["namesakes_at_address"] = namesakes
        return result(ReasonCode.ID_AMBIGUOUS)
    agree = names_agree(q_given or "", q_surname or "", pair["m_given"] or "", pair["m_surname"] or "", policy.nicknames)
    # Close but not agreeing: both names at some similarity level above "different" (a misspelling).
    close = pair.get("gamma_given", 0) > 0 and pair.get("gamma_surname", 0) > 0
    evidence["names_agree"] = agree
    if not on_record:
        # A street spelled a little differently at the same number and place is for a person to judge.
        if near and weight >= policy.review and (agree or close):
            return result(ReasonCode.ID_ADDRESS_NOT_ON_RECORD, review=True)
        return result(ReasonCode.ID_ADDRESS_NOT_ON_RECORD)
    # Rule 4 in spirit: a middle initial that contradicts is evidence of another person; a person decides.
    middle_conflict = bool(q_middle and pair["m_middle_initial"] and q_middle != pair["m_middle_initial"])
    evidence["middle_initial_conflict"] = middle_conflict
    if weight >= policy.threshold and agree and not middle_conflict:
        return result(ReasonCode.ID_POSITIVE)
    if weight >= policy.review and (agree or close):
        return result(ReasonCode.ID_WEAK, review=True)
    return result(ReasonCode.ID_WEAK)


def evidence_json(identification: Identification) -> str:
    return json.dumps(identification.evidence, sort_keys=True)
