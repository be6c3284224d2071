"""Rules that need the whole batch: one reason text pasted on many requests, one officer named on
more cases than anyone could be personally engaged in, the same request twice.

The batch is never held in memory: each row contributes a few short keys (`row_keys`), DuckDB
aggregates them (`ROW_STATS_SQL`), and each request then reads its own figures from `ctx.stats`.
"""

from __future__ import annotations

import hashlib

from taxgate.domain import ReasonCode, Request
from taxgate.normalize.text import fold
from taxgate.rules.registry import Context, request_rule

KEY_COLUMNS = ("relevance_key", "official_key", "case_key", "request_id_key", "person_case_key")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest() if text else ""


def row_keys(request: Request) -> tuple[str, str, str, str, str]:
    """The keys a row contributes to the batch figures, in KEY_COLUMNS order ("" = no key)."""
    if request.malformed:
        return ("", "", "", request.request_id, "")
    case = fold(request.case_number)
    person = "|".join((fold(request.first_name), fold(request.last_name), request.date_of_birth.strip(), case))
    return (
        _digest(fold(request.relevance)),
        fold(request.engaged_official),
        case,
        request.request_id,
        _digest(person) if case and fold(request.last_name) else "",
    )


# Reads table `batch_keys` (row_number + KEY_COLUMNS); returns one row per row_number, in order.
ROW_STATS_SQL = """
WITH reasons AS (
    SELECT relevance_key, count(*) AS repeats FROM batch_keys WHERE relevance_key <> '' GROUP BY 1
), officials AS (
    SELECT official_key, count(DISTINCT case_key) FILTER (WHERE case_key <> '') AS cases
    FROM batch_keys WHERE official_key <> '' GROUP BY 1
)
SELECT
    k.row_number,
    coalesce(r.repeats, 0) AS relevance_repeats,
    coalesce(o.cases, 0) AS official_cases,
    CASE WHEN k.request_id_key = '' THEN 1
         ELSE row_number() OVER (PARTITION BY k.request_id_key ORDER BY k.row_number) END AS request_id_ordinal,
    CASE WHEN k.person_case_key = '' THEN 1
         ELSE row_number() OVER (PARTITION BY k.person_case_key ORDER BY k.row_number) END AS person_case_ordinal
FROM batch_keys k
LEFT JOIN reasons r USING (relevance_key)
LEFT JOIN officials o USING (official_key)
ORDER BY k.row_number
"""


@request_rule(
    ReasonCode.RELEVANCE_NOT_SPECIFIC,
    "26 U.S.C. § 6103(i)(2)(B)(iv)",
    "The same reason text (after normalising) appears on more requests than the policy allows: boilerplate.",
)
def relevance_boilerplate(request: Request, ctx: Context) -> bool:
    return ctx.stats.relevance_repeats > ctx.policy.thresholds.relevance_max_repeats


@request_rule(
    ReasonCode.ENGAGED_OFFICIAL_IMPLAUSIBLE,
    "26 U.S.C. § 6103(i)(2)(A)",
    "The named officer is on more cases than one person can be personally and directly engaged in.",
)
def engaged_official_implausible(request: Request, ctx: Context) -> bool:
    return ctx.stats.official_cases > ctx.policy.thresholds.official_max_cases


@request_rule(
    ReasonCode.DUPLICATE_REQUEST,
    "26 U.S.C. § 6103(i)(2)(B); § 6103(p)(3)(A)",
    "An earlier row of the batch has the same request id, or the same person and case: it is decided once.",
)
def duplicate_request(request: Request, ctx: Context) -> bool:
    return ctx.stats.request_id_ordinal > 1 or ctx.stats.person_case_ordinal > 1
