"""The rule registry: every rule is a small function with a stable code, a citation and a
one-line explanation. All rules run; a request collects every code whose rule fails.

Two scopes:
- `batch_rule`: judged once on the manifest (who asks, under what agreement); the code lands on
  every request of the batch.
- `request_rule`: judged on each request, with `ctx.stats` holding what the whole batch says about
  this row (how often its reason text recurs, how many cases its officer carries, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from taxgate.domain import ReasonCode
from taxgate.intake import Manifest
from taxgate.policy import Policy


@dataclass(slots=True)
class RowStats:
    """What the batch as a whole says about one row (computed by `rules.batch`)."""

    relevance_repeats: int = 0  # requests in the batch with the same normalised reason text
    official_cases: int = 0  # distinct case numbers naming this row's engaged official
    request_id_ordinal: int = 1  # 1 for the first row with this request_id, 2 for the next, ...
    person_case_ordinal: int = 1  # likewise for the same person and case number


@dataclass(slots=True)
class Context:
    """Everything a rule may read besides the request itself."""

    policy: Policy
    manifest: Manifest
    as_of: date  # the day the batch was submitted (today when the manifest does not say)
    stats: RowStats = field(default_factory=RowStats)


@dataclass(frozen=True, slots=True)
class Rule:
    code: ReasonCode
    citation: str
    explanation: str
    check: Callable[..., bool]  # True when the rule FAILS, i.e. the defect is present
    scope: str  # "batch" or "request"


BATCH_RULES: list[Rule] = []
REQUEST_RULES: list[Rule] = []


def _register(rules: list[Rule], scope: str, code: ReasonCode, citation: str, explanation: str):
    def wrap(check: Callable[..., bool]) -> Callable[..., bool]:
        rules.append(Rule(code, citation, explanation, check, scope))
        return check

    return wrap


def batch_rule(code: ReasonCode, citation: str, explanation: str):
    """Register `check(manifest, policy, as_of) -> bool`, True when the batch is defective."""
    return _register(BATCH_RULES, "batch", code, citation, explanation)


def request_rule(code: ReasonCode, citation: str, explanation: str):
    """Register `check(request, ctx) -> bool`, True when the request is defective."""
    return _register(REQUEST_RULES, "request", code, citation, explanation)


def all_rules() -> list[Rule]:
    return BATCH_RULES + REQUEST_RULES
