"""The identification model as Splink settings: comparisons and blocking rules as data.

`model_settings()` is the untrained model; `taxgate model train` fits it on a seeded synthetic world
and writes the trained model to `identify/model/` as JSON, versioned by file name. The same settings
run on DuckDB or Spark; only the SQL dialect differs.

Blocking generates candidates where the requester's address could agree with an address the taxpayer
filed from (same ZIP and house number, or same house number and street in the same state or city),
where name and date of birth agree, one name misspelled at most (so that a wrong address is
reported as such), or where a supplied TIN names a taxpayer — so that a TIN's contradiction can
veto, never so that a TIN alone can release.
"""

from __future__ import annotations

import json
from pathlib import Path

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on

MODEL_NAME = "taxgate-id"


# Every level is computed by a function both engines define alike: equality, SQL's `levenshtein`
# (the same edit distance in DuckDB and Spark) and substrings. Jaro-Winkler is not used: DuckDB's
# applies Winkler's boost threshold and the Spark jar's does not, so a pair near 0.8 fell into
# different levels on the two engines and got different weights.
def _name_comparison(
    column: str, other: str, first_token: str, phonetic: str, label: str
) -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name=column,
        comparison_description=label,
        comparison_levels=[
            cll.NullLevel(column),
            cll.ExactMatchLevel(column).configure(tf_adjustment_column=column),
            # given name and surname written the other way round ("Nguyen Thi Lan")
            cll.CustomLevel(
                f'"{column}_l" = "{other}_r" AND "{other}_l" = "{column}_r"',
                label_for_charts=f"{column} swapped with {other}",
                base_dialect_str="duckdb",
            ),
            cll.ExactMatchLevel(
                first_token
            ),  # a compound name with one part, a dropped second surname
            cll.LevenshteinLevel(column, 1),  # one letter wrong, dropped or added
            cll.ExactMatchLevel(phonetic),
            cll.LevenshteinLevel(column, 2),
            cll.ElseLevel(),
        ],
    )


def _dob_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="dob",
        comparison_description="date of birth",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            cll.LevenshteinLevel("dob", 1),  # one digit wrong
            # day and month swapped, or two digits transposed: what a clerk types, not another person
            cll.CustomLevel(
                "substr(dob_l, 1, 4) = substr(dob_r, 1, 4) AND substr(dob_l, 6, 2) = substr(dob_r, 9, 2) "
                "AND substr(dob_l, 9, 2) = substr(dob_r, 6, 2)",
                label_for_charts="dob with day and month swapped",
                base_dialect_str="duckdb",
            ),
            cll.LevenshteinLevel("dob", 2),
            cll.ElseLevel(),
        ],
    )


def _street_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        output_column_name="street_name",
        comparison_description="street",
        comparison_levels=[
            cll.NullLevel("street_name"),
            cll.ExactMatchLevel("street_name").configure(tf_adjustment_column="street_name"),
            cll.ExactMatchLevel(
                "street_letters"
            ),  # the type mistyped or glued on ("PRIDHAMSTREET")
            cll.ExactMatchLevel(
                "street_core"
            ),  # the type left out (or another type: the rules tell)
            # the name and type spelled out, letters only: a letter wrong, a space lost or put in
            cll.LevenshteinLevel("street_letters", 2),
            cll.LevenshteinLevel("street_letters", 4),
            cll.ElseLevel(),
        ],
    )


def model_settings(sql_dialect: str = "duckdb") -> SettingsCreator:
    return SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=[
            _name_comparison("given", "surname", "given_first", "given_phonetic", "given name"),
            _name_comparison("surname", "given", "surname_first", "surname_phonetic", "surname"),
            cl.ExactMatch("middle_initial"),
            cl.ExactMatch("suffix"),
            _dob_comparison(),
            cl.ExactMatch("tin"),
            cl.ExactMatch("house_number"),
            _street_comparison(),
            cl.ExactMatch("unit"),
            cl.ExactMatch("zip5"),
            cl.CustomComparison(
                output_column_name="city_state",
                comparison_levels=[
                    cll.Or(cll.NullLevel("city"), cll.NullLevel("state")),
                    cll.And(cll.ExactMatchLevel("city"), cll.ExactMatchLevel("state")),
                    cll.ExactMatchLevel("state"),
                    cll.ElseLevel(),
                ],
            ),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("zip5", "house_number"),
            block_on("house_number", "street_name", "state"),
            block_on(
                "house_number", "street_core", "city"
            ),  # a ZIP mistyped, a street type misspelled
            block_on("given_first", "surname_first", "dob"),
            block_on("surname_first", "dob"),  # a given name misspelled
            block_on("given_first", "dob"),  # a surname misspelled or changed, the ZIP mistyped
            block_on(
                "house_number", "dob"
            ),  # both names and the ZIP mistyped, or given and surname swapped
            block_on("tin"),
        ],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=True,
        additional_columns_to_retain=["address_key", "street_type"],  # the rules read these too
    )


def trained_settings(model_file: Path, sql_dialect: str) -> dict:
    """The trained model as a Splink settings dict for `sql_dialect`.

    The model file holds DuckDB SQL; for another backend the same comparisons are rendered in that
    dialect and the trained parameters (the prior, each level's m and u) are carried over level by
    level, so that both backends score with one model.
    """
    trained = json.loads(model_file.read_text())
    if sql_dialect == trained.get("sql_dialect", "duckdb"):
        return trained
    rendered = model_settings().get_settings(sql_dialect).as_dict()
    rendered["probability_two_random_records_match"] = trained[
        "probability_two_random_records_match"
    ]
    for ours, theirs in zip(rendered["comparisons"], trained["comparisons"], strict=True):
        assert ours["output_column_name"] == theirs["output_column_name"], (
            "model and settings differ"
        )
        for level, fitted in zip(
            ours["comparison_levels"], theirs["comparison_levels"], strict=True
        ):
            assert level.get("label_for_charts") == fitted.get("label_for_charts"), (
                "model and settings differ"
            )
            for key in ("m_probability", "u_probability"):
                if key in fitted:
                    level[key] = fitted[key]
    return rendered
