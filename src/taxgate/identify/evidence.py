"""An identification's evidence in words, for the officer who reviews it and for `taxgate explain`:
what each comparison level means, and which rule of the positive-identification decision
(`identify.DECISION_SQL`, docs/DESIGN.md "Positive identification") gave the request its code.

The words come from the trained model itself (each level's own label), so they cannot drift from
what was scored; the rules are the decision query's, in the order it applies them.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from taxgate.identify import MODEL_FILE
from taxgate.identify.decision import RULE_NAMES

# What a field's comparison is called for a reader.
FIELD_NAMES = {
    "given": "first name",
    "surname": "last name",
    "middle_initial": "middle initial",
    "suffix": "suffix",
    "dob": "date of birth",
    "tin": "TIN",
    "house_number": "house number",
    "street_name": "street name",
    "unit": "unit",
    "zip5": "ZIP",
    "city_state": "city and state",
}

_PHRASES = (  # a Splink level label, as a reader would say it
    (r"^\(?\w+ is NULL\)?( OR .*)?$", "not compared: missing on one side"),
    (r"^\(Exact match on city\) AND \(Exact match on state\)$", "the same city and state"),
    (r"^Exact match on state$", "the same state, another city"),
    (r"^\w+ swapped with \w+$", "written as the other name: given name and surname swapped"),
    (
        r"^Exact match on street_letters$",
        "the same once spelled out (a type mistyped, or a space lost)",
    ),
    (r"^Exact match on street_core$", "the same name, the type left out or another"),
    (r"^Exact match on \w+_first$", "the first word is the same"),
    (r"^Exact match on \w+_phonetic$", "sounds the same, spelled differently"),
    (r"^Exact match on \w+$", "the same"),
    (
        r"^Jaro-Winkler distance of \w+ >= ([\d.]+)$",
        r"spelled alike (Jaro-Winkler similarity at least \1)",
    ),
    (r"^Levenshtein distance of street_letters <= (\d+)$", r"spelled out, within \1 letters"),
    (r"^Levenshtein distance of dob <= 1$", "one digit wrong"),
    (r"^Levenshtein distance of dob <= (\d+)$", r"within \1 digits (two swapped, say)"),
    (r"^Levenshtein distance of \w+ <= 1$", "one letter apart (a letter wrong, dropped or added)"),
    (r"^Levenshtein distance of \w+ <= (\d+)$", r"within \1 letters"),
    (r"^dob with day and month swapped$", "the same, with day and month swapped"),
    (r"^Damerau-Levenshtein distance of \w+ <= 1$", "one typing error apart"),
    (r"^All other comparisons$", "different"),
)


@cache
def _levels(model_file: Path = MODEL_FILE) -> dict[str, dict[int, str]]:
    """comparison -> comparison vector value -> the level's label, as the model was trained."""
    model = json.loads(model_file.read_text())
    labels = {}
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        labels[comparison["output_column_name"]] = {
            len(levels) - 1 - i: lv["label_for_charts"] for i, lv in enumerate(levels)
        }
        labels[comparison["output_column_name"]][-1] = "null (not compared)"
    return labels


def prior_weight(model_file: Path = MODEL_FILE) -> float:
    """The match weight before any field is compared: log2 of the prior odds that two records are one person."""
    import math

    p = json.loads(model_file.read_text())["probability_two_random_records_match"]
    return math.log2(p / (1 - p))


PRIOR = prior_weight()


def level_label(comparison: str, level: int) -> str:
    """The model's own label for a comparison level (Splink's `label_for_charts`)."""
    return _levels().get(comparison, {}).get(level, f"level {level}")


def level_meaning(comparison: str, level: int) -> str:
    """A comparison level in words: 'the same', 'spelled alike (...)', 'different', ..."""
    if level == -1:
        return "not compared: missing on one side"
    label = level_label(comparison, level)
    for pattern, words in _PHRASES:
        if re.match(pattern, label):
            return re.sub(pattern, words, label)
    return label


def top_level(comparison: str) -> int:
    return max(_levels().get(comparison, {0: ""}))


def _rule_of(evidence: dict, code: str, margin: float) -> str:
    """The decision rule that gave the code; evidence recorded before rules were named says it by its facts."""
    if evidence.get("rule"):
        return evidence["rule"]
    runner = evidence.get("runner_up") or {}
    weight = float((evidence.get("candidate") or {}).get("weight") or 0)
    if code == "ID_AMBIGUOUS":
        close = runner.get("tin") and weight - float(runner.get("weight") or 0) < margin
        return "runner_up_close" if close else "namesake_at_address"
    if code == "ID_WEAK":
        return (
            "names_differ"
            if not evidence.get("names_agree")
            else "middle_initial_contradicts"
            if evidence.get("middle_initial_conflict")
            else "weight_below_threshold"
        )
    return {
        "ID_TIN_CONFLICT": "tin_contradicts",
        "ID_DOB_CONFLICT": "dob_contradicts",
        "ID_ADDRESS_NOT_ON_RECORD": "address_not_on_record",
    }.get(code, "positive")


def why(evidence: dict, threshold: float, review: float, margin: float) -> list[str]:
    """The rule that gave the request its identification code (`identify.decision.RULES`), in words,
    with the fields and figures that caused it; then, for a request in review, why an officer
    decides rather than the rule."""
    code = (evidence.get("decision") or "").split(" ")[0]
    in_review = "(review)" in (evidence.get("decision") or "")
    fields = evidence.get("fields") or {}
    weight = float((evidence.get("candidate") or {}).get("weight") or 0)
    runner = evidence.get("runner_up") or {}
    rule = _rule_of(evidence, code, margin)
    if rule == "positive":
        names = (
            "the names agree but for a typing error, beside the same date of birth"
            if evidence.get("names") == "misspelled"
            else "the names agree"
        )
        address = (
            "the address is one the taxpayer filed from but for a typing error"
            if evidence.get("address") == "misspelled"
            else "the address is one the taxpayer filed from"
        )
        return [
            f"A positive identification: {names}, {address}, nothing contradicts, the weight {weight:.1f} "
            f"clears the threshold of {threshold:g} and leads the runner-up by more than the margin of {margin:g}."
        ]
    lines = [RULE_NAMES[rule].words] if rule in RULE_NAMES else []
    if rule == "runner_up_close" and runner.get("tin"):
        lines.append(
            f"The candidate's weight is {weight:.1f} and the runner-up's {float(runner['weight']):.1f}, "
            f"{weight - float(runner['weight']):.1f} apart, less than the margin of {margin:g}."
        )
    elif rule in ("names_differ", "misspelled_name_uncorroborated"):
        differing = [
            f"the {FIELD_NAMES[name]} is {level_meaning(name, fields[name]['level'])} "
            f"(level {fields[name]['level']} of {top_level(name)})"
            for name in ("given", "surname")
            if name in fields and fields[name]["level"] < top_level(name)
        ]
        if differing:
            lines.append("In the model: " + "; ".join(differing) + ".")
    elif rule == "weight_below_threshold":
        lines.append(f"The match weight {weight:.1f} is below the threshold of {threshold:g}.")
    if in_review:
        because = {
            "weight_below_threshold": "and nothing else stopped it",
            "middle_initial_contradicts": "and only the middle initials differ, which a typing error or "
            "another person could make",
            "misspelled_name_uncorroborated": "and a misspelled name beside a mistyped date of birth is two "
            "errors in who the person is, for a person to weigh",
        }
        lines.append(
            f"An officer decides, not the rule: the weight {weight:.1f} is at or above the review line of "
            f"{review:g}, "
            + because.get(rule, "and the names agree or differ only as a misspelling would")
            + "."
        )
    return lines


def thresholds_line(evidence: dict, threshold: float, review: float, margin: float) -> str:
    candidate = evidence.get("candidate") or {}
    runner = evidence.get("runner_up") or {}
    weight = float(candidate.get("weight") or 0)
    lead = (
        f"the runner-up {float(runner['weight']):.1f}, {weight - float(runner['weight']):.1f} behind (margin "
        f"required {margin:g})"
        if runner.get("tin")
        else "no runner-up"
    )
    return (
        f"Weight {weight:.1f}: threshold for a positive identification {threshold:g}, review line {review:g}; "
        f"{lead}."
    )


__all__ = [
    "FIELD_NAMES",
    "PRIOR",
    "prior_weight",
    "level_label",
    "level_meaning",
    "thresholds_line",
    "top_level",
    "why",
]
