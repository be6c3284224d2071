"""Rules: the statute as code.

Files follow the statute: `requester` is who may ask (§ 6103(i)(2)(A), (p)(4)), `request` is what the
request must set forth ((B)(i)-(iv)), `purpose` is what it may be for ((A)), `items` is what may be
released ((C)), `batch` is what only the whole batch shows. Every rule runs; `judge_*` collect codes.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from datetime import date

from taxgate.domain import Level, ReasonCode, Request
from taxgate.intake import Manifest
from taxgate.policy import Policy
from taxgate.rules import batch, items, purpose, request, requester  # noqa: F401  (registers the rules)
from taxgate.rules.batch import KEYS_SQL, ROW_STATS_SQL, figures_evidence
from taxgate.rules.columns import (
    CODE_ORDER,
    UndeclaredRead,
    codes_of,
    judge_masks,
    judge_rows,
)
from taxgate.rules.items import refused_items, requested_items
from taxgate.rules.registry import (
    BATCH_RULES,
    REQUEST_FIELDS,
    REQUEST_RULES,
    Context,
    RowStats,
    Rule,
    all_rules,
)
from taxgate.rules.sets import RuleSet, rule_sets

# Bump when a rule's logic changes; the policy version is recorded beside it on every decision.
RULE_SET_VERSION = "2026.12.1"
RULE_SETS = rule_sets(RULE_SET_VERSION, REQUEST_RULES)
# Batches decided under these replay a practice held unlawful: counted apart from the statute's.
REPLAYED_VERSIONS = frozenset(r.version for r in RULE_SETS.values() if not r.lawful)


def named_rule_set(name: str) -> RuleSet:
    """A rule set by name; ValueError with the names there are."""
    try:
        return RULE_SETS[name]
    except KeyError:
        raise ValueError(f"unknown rule set {name!r}: use {' or '.join(RULE_SETS)}") from None


def judge_batch(manifest: Manifest, policy: Policy, as_of: date) -> list[ReasonCode]:
    """Codes of every batch-scope rule that fails; each applies to every request of the batch."""
    return sorted(
        {r.code for r in BATCH_RULES if r.check(manifest, policy, as_of)},
        key=CODE_ORDER.__getitem__,
    )


def judge_request(request_: Request, ctx: Context, rule_set: str = "statute") -> list[ReasonCode]:
    """Codes of every request-scope rule of the rule set that fails on one request (`ctx.stats` its
    figures), in the table's order, without repeats: `judge_rows` with one row."""
    columns = {name: [getattr(request_, name)] for name in (*REQUEST_FIELDS, "parse_error")}
    figures = {f.name: [getattr(ctx.stats, f.name)] for f in dataclass_fields(RowStats)}
    return list(judge_rows(RULE_SETS[rule_set].rules, columns, figures, ctx)[0])


def is_refusal(code: ReasonCode) -> bool:
    """Codes that make the request itself defective (item refusals do not)."""
    return code.level in (Level.BATCH, Level.REQUEST) and code not in (
        ReasonCode.HELD_BY_COURT_ORDER,
        ReasonCode.NOTICE_PERIOD,
    )


__all__ = [
    "KEYS_SQL",
    "ROW_STATS_SQL",
    "REPLAYED_VERSIONS",
    "RULE_SETS",
    "RULE_SET_VERSION",
    "RuleSet",
    "Context",
    "Rule",
    "RowStats",
    "all_rules",
    "figures_evidence",
    "is_refusal",
    "judge_batch",
    "judge_request",
    "judge_rows",
    "judge_masks",
    "codes_of",
    "UndeclaredRead",
    "refused_items",
    "requested_items",
    "named_rule_set",
]
