"""Rules that need the whole batch: one reason text pasted on many requests, one officer named on
more cases than anyone could be personally engaged in, the same request twice.

The batch is never held in Python's memory: DuckDB reads the staged rows and computes each row's
figures (`ROW_STATS_SQL`); each request then reads its own figures from `ctx.stats`.
"""

from __future__ import annotations

from taxgate.domain import ReasonCode, Request
from taxgate.rules.registry import Context, request_rule

# Reads table `staged` (the batch's rows as received: row_number, parse_error and the request
# columns); returns one row of batch figures per row_number, in order. Text is folded the way
# `normalize.text.fold` folds it (accents, case, punctuation) so that trivial edits do not make
# boilerplate look specific or one officer look like two. Unparseable rows contribute nothing.
_FOLD = "trim(regexp_replace(lower(strip_accents({})), '[^a-z0-9]+', ' ', 'g'))"
ROW_STATS_SQL = f"""
WITH keys AS (
    SELECT row_number,
           CASE WHEN parse_error = '' THEN {_FOLD.format('relevance')} ELSE '' END AS relevance_key,
           CASE WHEN parse_error = '' THEN {_FOLD.format('engaged_official')} ELSE '' END AS official_key,
           CASE WHEN parse_error = '' THEN {_FOLD.format('case_number')} ELSE '' END AS case_key,
           request_id AS request_id_key,
           CASE WHEN parse_error = '' AND {_FOLD.format('case_number')} <> '' AND {_FOLD.format('last_name')} <> ''
                THEN concat_ws('|', {_FOLD.format('first_name')}, {_FOLD.format('last_name')}, trim(date_of_birth),
                               {_FOLD.format('case_number')})
                ELSE '' END AS person_case_key
    FROM staged
), reasons AS (
    SELECT relevance_key, count(*) AS repeats FROM keys WHERE relevance_key <> '' GROUP BY 1
), officials AS (
    SELECT official_key, count(DISTINCT case_key) FILTER (WHERE case_key <> '') AS cases
    FROM keys WHERE official_key <> '' GROUP BY 1
)
SELECT
    k.row_number,
    coalesce(r.repeats, 0) AS relevance_repeats,
    coalesce(o.cases, 0) AS official_cases,
    CASE WHEN k.request_id_key = '' THEN 1
         ELSE row_number() OVER (PARTITION BY k.request_id_key ORDER BY k.row_number) END AS request_id_ordinal,
    CASE WHEN k.person_case_key = '' THEN 1
         ELSE row_number() OVER (PARTITION BY k.person_case_key ORDER BY k.row_number) END AS person_case_ordinal
FROM keys k
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
