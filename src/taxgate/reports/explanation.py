"""One request explained, for the officer, the auditor and the court: the rule that decided it in
words, the thresholds it was held to, the candidate and the runner-up, and how each field moved the
match weight from the prior to the weight that decided (a waterfall, with the threshold, the review
line and the runner-up drawn across). Read from the evidence `taxgate process` wrote."""

from __future__ import annotations

from pathlib import Path

from taxgate.domain import ReasonCode
from taxgate.identify import MODEL_FILE
from taxgate.identify.evidence import (
    FIELD_NAMES,
    PRIOR,
    level_meaning,
    prior_weight,
    thresholds_line,
    top_level,
    why,
)
from taxgate.render import Document, Section, waterfall_chart


def steps(evidence: dict, model_file: Path = MODEL_FILE) -> list[tuple[str, float]]:
    """(label, weight) from the prior through every field (its term-frequency adjustment folded in):
    they add up to the candidate's match weight."""
    out = [
        (
            "prior: two records at random",
            PRIOR if model_file == MODEL_FILE else prior_weight(model_file),
        )
    ]
    for name, field in evidence["fields"].items():
        out.append(
            (
                f"{FIELD_NAMES.get(name, name)}: {level_meaning(name, field['level'])}",
                float(field["weight"]) + float(field.get("tf") or 0),
            )
        )
    return out


def refusal_lines(record: dict) -> list[str]:
    """For a request with no identification evidence: its outcome and every code, with its citation
    and meaning (refused requests are never compared with the master)."""
    codes = [c for c in record.get("reasons", "").split(";") if c]
    lines = [f"{record['request_id']}: {record['outcome']}."]
    for code in codes:
        reason = ReasonCode(code)
        lines.append(f"{code} ({reason.citation}): {reason.meaning}")
    if not any(c.startswith("ID_") for c in codes):
        lines.append(
            "A rule refused it before identification, so no taxpayer's record was consulted."
        )
    return lines


def explanation(evidence: dict, threshold: float, review: float, margin: float) -> Document:
    candidate, runner = evidence["candidate"], evidence.get("runner_up") or {}
    drawn = steps(evidence)
    lines = [(threshold, "threshold", "--"), (review, "review line", ":")]
    if runner.get("tin") and runner.get("weight") is not None:
        lines.append((float(runner["weight"]), "runner-up", "-."))
    rows = [
        (
            FIELD_NAMES.get(name, name),
            level_meaning(name, f["level"]),
            f"{f['level']} of {top_level(name)}",
            f"{float(f['weight']) + float(f.get('tf') or 0):+.1f}",
        )
        for name, f in evidence["fields"].items()
    ]
    return Document(
        f"Request {evidence['request_id']}: {evidence['outcome']}",
        evidence.get("decision", ""),
        [
            ("Candidate", f"TIN {candidate['tin']}, weight {float(candidate['weight']):.1f}"),
            (
                "Runner-up",
                f"TIN {runner['tin']}, weight {float(runner['weight']):.1f}"
                if runner.get("tin")
                else "none",
            ),
            (
                "Thresholds",
                f"positive identification {threshold:g}, review line {review:g}, margin over the runner-up "
                f"{margin:g}",
            ),
        ],
        [
            Section(
                "Why",
                why(evidence, threshold, review, margin)
                + [thresholds_line(evidence, threshold, review, margin)],
            ),
            Section(
                "Field by field",
                [],
                ("field", "compared", "level", "weight"),
                rows,
                [
                    waterfall_chart(
                        "weights",
                        "How each field moved the match weight",
                        drawn,
                        axis="match weight (log2 Bayes factor)",
                        total_label="match weight",
                        lines=lines,
                        caption=f"The bars add up to the candidate's weight, {sum(w for _, w in drawn):.1f}.",
                    )
                ],
            ),
        ],
        "Synthetic demo data.",
    )


__all__ = ["explanation", "refusal_lines", "steps"]
