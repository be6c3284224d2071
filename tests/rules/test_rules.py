"""The registry: every reason code the rules own has a rule with a citation, and conformance cases."""

from __future__ import annotations

from collections import Counter

import yaml

from taxgate.domain import Level, ReasonCode
from taxgate.normalize.statute import parse_citation
from taxgate.rules import all_rules

from support import CONFORMANCE

# Codes that other stages own: identification (ID_*) and court orders (issue 5).
NOT_RULES = {c for c in ReasonCode if c.level is Level.AUDIT} | {
    ReasonCode.HELD_BY_COURT_ORDER,
    ReasonCode.NOTICE_PERIOD,
}


def test_every_rule_code_has_a_rule_with_citation_and_explanation():
    rules = all_rules()
    assert {r.code for r in rules} == set(ReasonCode) - NOT_RULES
    for rule in rules:
        assert rule.citation.startswith("26 U.S.C. § 6103"), rule
        assert 20 < len(rule.explanation) < 140 and rule.explanation.endswith("."), rule


def test_every_reason_code_cites_the_statute_and_says_what_it_means():
    """One step from the statute: each code's every citation is one the statute reader parses, and
    its meaning is one line a requester can read."""
    for code in ReasonCode:
        parts = code.citation.split("; ")
        parsed = [parse_citation(p) for p in parts]
        assert all(parsed), (code, code.citation)
        # § 6103 itself, or (for a court's hold) the power a court stays an agency's action under
        assert all((c.title, c.section) in {(26, "6103"), (5, "705")} for c in parsed), code
        assert (
            code.meaning.endswith(".") and 20 < len(code.meaning) < 200 and "\n" not in code.meaning
        ), code


def _cases():
    for path in CONFORMANCE.glob("[!_]*.yaml"):
        yield from yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]


def _expectations(case):
    if "expect" in case:
        yield case["expect"]
    for row in case.get("rows", []):
        if "expect" in row:
            yield row["expect"]
    yield from case.get("expect_rows", [])
    for batch in case.get("batches", []):
        yield from _expectations(batch)


def test_every_rule_code_has_five_conformance_cases_and_a_near_miss():
    per_code: Counter[str] = Counter()
    for case in _cases():
        codes = set()
        for expect in _expectations(case):
            codes |= set(expect.get("codes", [])) | set(expect.get("includes", []))
        per_code.update(codes)
    for code in set(ReasonCode) - NOT_RULES:
        assert per_code[code.value] >= 5, (
            f"{code.value} has {per_code[code.value]} conformance cases"
        )
    near_misses = [c for c in _cases() if c["id"].startswith("near-miss")]
    assert len(near_misses) >= 20


def test_case_ids_are_unique_within_a_file():
    for path in CONFORMANCE.glob("[!_]*.yaml"):
        ids = [c["id"] for c in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]
        assert len(ids) == len(set(ids)), path.name
