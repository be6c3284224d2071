"""The waterfall chart of one decision: how each field moved the match weight from the prior to the
final score. Drawn by Splink's own waterfall chart definition, with its charting libraries inlined,
so the HTML file opens offline (for a reviewer, a court, an inspector general)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from taxgate.identify import MODEL_FILE


def _labels(model: dict) -> dict[str, dict[int, str]]:
    """comparison -> comparison vector value -> the level's label."""
    labels = {}
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        labels[comparison["output_column_name"]] = {len(levels) - 1 - i: lv["label_for_charts"] for i, lv in enumerate(levels)}
        labels[comparison["output_column_name"]][-1] = "null (not compared)"
    return labels


def _record(order: int, column: str, label: str, weight: float, gamma: int | None, tf: bool, text: str) -> dict:
    return {
        "column_name": column, "label_for_charts": label, "sql_condition": None, "log2_bayes_factor": weight,
        "bayes_factor": 2**weight, "comparison_vector_value": gamma, "m_probability": None, "u_probability": None,
        "bayes_factor_description": text, "value_l": "", "value_r": "", "term_frequency_adjustment": tf,
        "record_number": 0, "bar_sort_order": order,
    }


def waterfall_records(evidence: dict, model_file: Path = MODEL_FILE) -> list[dict]:
    model = json.loads(model_file.read_text())
    labels = _labels(model)
    prior = model["probability_two_random_records_match"]
    records = [_record(0, "Prior", "Starting match weight (prior)", math.log2(prior / (1 - prior)), None, False,
                       "One request and one address row of the master, before any field is compared")]
    for name, field in evidence["fields"].items():
        label = labels.get(name, {}).get(field["level"], f"level {field['level']}")
        records.append(_record(len(records), name, label, field["weight"], field["level"], False,
                               f"{name}: {label}"))
        if field.get("tf"):
            records.append(_record(len(records), f"tf_{name}", "Term frequency adjustment", field["tf"], field["level"],
                                   True, f"How common the value of {name} is"))
    total = sum(r["log2_bayes_factor"] for r in records)
    records.append(_record(len(records), "Final score", "Final score", total, None, False, "The candidate's match weight"))
    return records


def waterfall_html(evidence: dict, model_file: Path = MODEL_FILE) -> str:
    from splink.internals.charts import WaterfallChart

    return WaterfallChart(waterfall_records(evidence, model_file)).to_html(inline=True)
