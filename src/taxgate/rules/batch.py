"""Rules that need the whole batch and the agency's earlier ones: one reason text pasted on many
requests, one officer named on more cases than anyone could be personally engaged in, the same
request twice. Splitting a file into batches changes no figure (`taxgate.history`).

The batch is never held in Python's memory: DuckDB reads the staged rows, computes each row's keys
(`KEYS_SQL`) and, with what the history counts, each row's figures (`ROW_STATS_SQL`); each request
then reads its own figures from `ctx.stats`.
"""

from __future__ import annotations

from taxgate.domain import ReasonCode, Request
from taxgate.rules.registry import Context, request_rule

# Reads table `staged` (the batch's rows as received: row_number, parse_error and the request
# columns); returns each row's keys, in row order. Text is folded the way `normalize.text.fold` folds
# it (accents, case, punctuation) so that trivial edits do not make boilerplate look specific or one
# officer look like two; each key is a 60-bit integer from the MD5 of the folded text (the same in
# every store, since later batches are judged against it: `taxgate.history`). A collision could only
# refuse, never release. Unparseable rows contribute only their request id.
_FOLD = "trim(regexp_replace(lower(strip_accents({})), '[^a-z0-9]+', ' ', 'g'))"
# A case number is its letters and digits: "ICE-0001", "ICE 0001" and "ICE0001" name one case.
_CASE = "regexp_replace(lower(strip_accents(case_number)), '[^a-z0-9]+', '', 'g')"
_HASH = "CASE WHEN {0} <> '' THEN ('0x' || substr(md5({0}), 1, 15))::BIGINT END"
_PERSON_CASE = (
    f"CASE WHEN {_CASE} <> '' AND {_FOLD.format('last_name')} <> '' "
    f"THEN concat_ws('|', {_FOLD.format('first_name')}, {_FOLD.format('last_name')}, "
    f"trim(date_of_birth), {_CASE}) ELSE '' END"
)


def _parsed(expression: str) -> str:
    return f"CASE WHEN parse_error = '' THEN {expression} ELSE '' END"


KEYS_SQL = f"""
SELECT row_number,
       {_HASH.format("request_id")} AS request_key,
       {_HASH.format(_parsed(_PERSON_CASE))} AS person_case_key,
       {_HASH.format(_parsed(_FOLD.format("engaged_official")))} AS official_key,
       {_HASH.format(_parsed(_CASE))} AS case_key,
       {_HASH.format(_parsed(_FOLD.format("relevance")))} AS relevance_key,
       {_parsed("trim(engaged_official)")} AS official_name
FROM staged
ORDER BY row_number
"""

# Reads `batch_keys` (KEYS_SQL's result) and what the history says (`history_officials`,
# `history_reasons`, `history_earlier_requests`, `history_earlier_person_cases`, `history_batches`;
# empty when there is no history): one row
# of figures per row_number, in order. Reason uses add up (this batch's and the window's earlier
# ones); distinct cases per officer are the history's union where it has one (this batch included).
ROW_STATS_SQL = """
WITH reasons AS (
    SELECT relevance_key, count(*) AS uses FROM batch_keys WHERE relevance_key IS NOT NULL GROUP BY 1
), officials AS (
    SELECT official_key, count(DISTINCT case_key) AS cases FROM batch_keys WHERE official_key IS NOT NULL GROUP BY 1
)
SELECT
    k.row_number,
    coalesce(r.uses, 0) + coalesce(hr.uses, 0) AS relevance_repeats,
    coalesce(r.uses, 0) AS relevance_in_batch,
    coalesce(hr.since, '') AS relevance_since,
    coalesce(br.batch_ref || ' (batch ' || br.batch_id || ')', '') AS relevance_first_batch,
    coalesce(ho.cases, o.cases, 0) AS official_cases,
    coalesce(o.cases, 0) AS official_in_batch,
    coalesce(ho.since, '') AS official_since,
    coalesce(bo.batch_ref || ' (batch ' || bo.batch_id || ')', '') AS official_first_batch,
    CASE WHEN k.request_key IS NULL THEN 1
         ELSE row_number() OVER (PARTITION BY k.request_key ORDER BY k.row_number) END AS request_id_ordinal,
    CASE WHEN k.person_case_key IS NULL THEN 1
         ELSE row_number() OVER (PARTITION BY k.person_case_key ORDER BY k.row_number) END AS person_case_ordinal,
    coalesce(be.batch_ref || ' (batch ' || be.batch_id || ')', '') AS earlier_request,
    coalesce(bp.batch_ref || ' (batch ' || bp.batch_id || ')', '') AS earlier_person_case
FROM batch_keys k
LEFT JOIN reasons r USING (relevance_key)
LEFT JOIN officials o USING (official_key)
LEFT JOIN history_reasons hr USING (relevance_key)
LEFT JOIN history_officials ho USING (official_key)
LEFT JOIN history_earlier_requests er USING (request_key)
LEFT JOIN history_earlier_person_cases ep USING (person_case_key)
LEFT JOIN history_batches br ON br.batch_id = hr.first_batch
LEFT JOIN history_batches bo ON bo.batch_id = ho.first_batch
LEFT JOIN history_batches be ON be.batch_id = er.batch_id
LEFT JOIN history_batches bp ON bp.batch_id = ep.batch_id
ORDER BY k.row_number
"""


def figures_evidence(codes, stats: dict, policy, window_days: int | None) -> dict:
    """The figure behind each cross-batch code a request carries, for its decision's evidence: how
    many, against what limit, since when, and the earliest batch counted (a court reads this)."""
    window = {"window_days": window_days} if window_days else {"window": "this batch"}
    out = {}
    if ReasonCode.ENGAGED_OFFICIAL_IMPLAUSIBLE in codes:
        out[ReasonCode.ENGAGED_OFFICIAL_IMPLAUSIBLE.value] = {
            "cases": stats["official_cases"],
            "in_this_batch": stats["official_in_batch"],
            "limit": policy.thresholds.official_max_cases,
            **window,
            "since": stats["official_since"],
            "first_batch": stats["official_first_batch"] or "this batch",
        }
    if (
        ReasonCode.RELEVANCE_NOT_SPECIFIC in codes
        and stats["relevance_repeats"] > policy.thresholds.relevance_max_repeats
    ):
        out[ReasonCode.RELEVANCE_NOT_SPECIFIC.value] = {
            "uses": stats["relevance_repeats"],
            "in_this_batch": stats["relevance_in_batch"],
            "limit": policy.thresholds.relevance_max_repeats,
            **window,
            "since": stats["relevance_since"],
            "first_batch": stats["relevance_first_batch"] or "this batch",
        }
    if ReasonCode.DUPLICATE_REQUEST in codes:
        out[ReasonCode.DUPLICATE_REQUEST.value] = {
            "earlier_row_of_this_batch": stats["request_id_ordinal"] > 1
            or stats["person_case_ordinal"] > 1,
            "request_id_answered_in": stats["earlier_request"],
            "person_case_answered_in": stats["earlier_person_case"],
        }
    return {k: {f: v for f, v in d.items() if v not in ("", None, False)} for k, d in out.items()}


@request_rule(
    ReasonCode.RELEVANCE_NOT_SPECIFIC,
    "The same reason text (normalised) is on more of the agency's requests within the window than allowed.",
    reads=(),
    figures=("relevance_repeats",),
)
def relevance_boilerplate(request: Request, ctx: Context) -> bool:
    return ctx.stats.relevance_repeats > ctx.policy.thresholds.relevance_max_repeats


@request_rule(
    ReasonCode.ENGAGED_OFFICIAL_IMPLAUSIBLE,
    "The officer is named on more of the agency's cases within the window than one person can be engaged in.",
    reads=(),
    figures=("official_cases",),
)
def engaged_official_implausible(request: Request, ctx: Context) -> bool:
    return ctx.stats.official_cases > ctx.policy.thresholds.official_max_cases


@request_rule(
    ReasonCode.DUPLICATE_REQUEST,
    "The request id, or person and case, is on an earlier row or on an earlier answered or pending request.",
    reads=(),
    figures=("request_id_ordinal", "person_case_ordinal", "earlier_request", "earlier_person_case"),
)
def duplicate_request(request: Request, ctx: Context) -> bool:
    stats = ctx.stats
    return (
        stats.request_id_ordinal > 1
        or stats.person_case_ordinal > 1
        or bool(stats.earlier_request)
        or bool(stats.earlier_person_case)
    )
