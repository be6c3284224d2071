"""The rule registry: every rule is a small function with a stable code (which carries the
citation) and a one-line explanation of what it checks. All rules run; a request collects every code whose rule fails.

Two scopes:
- `batch_rule`: judged once on the manifest (who asks, under what agreement); the code lands on
  every request of the batch.
- `request_rule`: judged on each request, with `ctx.stats` holding what the whole batch says about
  this row (how often its reason text recurs, how many cases its officer carries, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date

from taxgate.domain import REQUEST_COLUMNS, ReasonCode
from taxgate.intake import Manifest
from taxgate.policy import Policy


@dataclass(slots=True)
class RowStats:
    """What the batch as a whole, and the agency's earlier batches, say about one row (`rules.batch`)."""

    # requests with the same normalised reason text, in the batch and the history's window
    relevance_repeats: int = 0
    relevance_in_batch: int = 0  # of which in this batch
    relevance_since: str = ""  # the earliest as-of date counted ("" without history)
    relevance_first_batch: str = ""  # the earliest batch counted
    # distinct case numbers naming this row's engaged official, likewise
    official_cases: int = 0
    official_in_batch: int = 0
    official_since: str = ""
    official_first_batch: str = ""
    request_id_ordinal: int = (
        1  # 1 for the first row of the batch with this request_id, 2 for the next, ...
    )
    person_case_ordinal: int = 1  # likewise for the same person and case number
    earlier_request: str = ""  # an earlier batch where this request id was answered or is pending
    earlier_person_case: str = ""  # likewise for the same person and case


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
    explanation: str  # what this rule checks; what the code means and cites is the code's own
    check: Callable[..., bool]  # True when the rule FAILS, i.e. the defect is present
    scope: str  # "batch" or "request"
    # A request rule's inputs besides the batch's (ctx.policy, ctx.manifest, ctx.as_of): the
    # request's fields it reads, and the figures of ctx.stats. It is judged once per distinct
    # value of them (`rules.judging`), and reading anything else is refused there.
    reads: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()

    @property
    def citation(self) -> str:
        return self.code.citation


# What a request rule may read: the columns a request is staged with (`parse_error` aside, a
# malformed row is never judged by the rules; `extra` is not the statute's business).
REQUEST_FIELDS = REQUEST_COLUMNS

BATCH_RULES: list[Rule] = []
REQUEST_RULES: list[Rule] = []


def _register(rules: list[Rule], scope: str, code: ReasonCode, explanation: str, **inputs):
    def wrap(check: Callable[..., bool]) -> Callable[..., bool]:
        rules.append(Rule(code, explanation, check, scope, **inputs))
        return check

    return wrap


def batch_rule(code: ReasonCode, explanation: str):
    """Register `check(manifest, policy, as_of) -> bool`, True when the batch is defective."""
    return _register(BATCH_RULES, "batch", code, explanation)


def request_rule(
    code: ReasonCode, explanation: str, *, reads: tuple[str, ...], figures: tuple[str, ...] = ()
):
    """Register `check(request, ctx) -> bool`, True when the request is defective. `reads` names
    every field of the request it reads, `figures` every field of `ctx.stats` (`RowStats`)."""
    unknown = set(reads) - set(REQUEST_FIELDS) | set(figures) - {f.name for f in fields(RowStats)}
    if unknown:
        raise ValueError(f"rule {code.value} reads what no request has: {sorted(unknown)}")
    if len(set(reads)) != len(reads) or len(set(figures)) != len(figures):
        raise ValueError(f"rule {code.value} names a field twice: {reads}, {figures}")
    return _register(
        REQUEST_RULES, "request", code, explanation, reads=tuple(reads), figures=tuple(figures)
    )


def all_rules() -> list[Rule]:
    return BATCH_RULES + REQUEST_RULES
