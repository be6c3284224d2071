"""For what the information may be used: § 6103(i)(2)(A) — a proceeding or investigation under a
specifically designated Federal criminal statute not involving tax administration, by officers
personally and directly engaged in it — and what the agreement adds. Request scope."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from taxgate.domain import ReasonCode, Request
from taxgate.normalize.statute import Citation, parse_citation
from taxgate.normalize.text import is_blank, split_list
from taxgate.rules.registry import Context, request_rule


@request_rule(
    ReasonCode.STATUTE_NOT_CRIMINAL,
    "The cited statute is civil (e.g. 8 U.S.C. § 1227, § 1229a, § 1231); (i)(2) serves criminal matters only.",
    reads=("statute",),
)
def statute_not_criminal(request: Request, ctx: Context) -> bool:
    return "civil" in ctx.policy.statute_kinds(request.statute)


@request_rule(
    ReasonCode.STATUTE_TAX_ADMINISTRATION,
    "The cited statute is in title 26, which is tax administration; (i)(2) excludes it.",
    reads=("statute",),
)
def statute_tax_administration(request: Request, ctx: Context) -> bool:
    return "tax_administration" in ctx.policy.statute_kinds(request.statute)


@request_rule(
    ReasonCode.STATUTE_UNKNOWN,
    "The cited statute is not in the policy's catalog of designated statutes; it is refused, never guessed.",
    reads=("statute",),
)
def statute_unknown(request: Request, ctx: Context) -> bool:
    return "unknown" in ctx.policy.statute_kinds(request.statute)


@request_rule(
    ReasonCode.CASE_NUMBER_MISSING,
    "The request must name the proceeding or investigation (its case number) the information is for.",
    reads=("case_number",),
)
def case_number_missing(request: Request, ctx: Context) -> bool:
    return is_blank(request.case_number)


@request_rule(
    ReasonCode.ENGAGED_OFFICIAL_MISSING,
    "The request must name the officer personally and directly engaged in the investigation.",
    reads=("engaged_official",),
)
def engaged_official_missing(request: Request, ctx: Context) -> bool:
    return is_blank(request.engaged_official)


def _readable_date(text: str) -> bool:
    for candidate in (text, text.replace("/", "-")):
        try:
            date.fromisoformat(candidate)
            return True
        except ValueError:
            pass
    parts = text.replace("-", "/").split("/")
    if len(parts) == 3 and all(p.isdigit() for p in parts):  # US style MM/DD/YYYY
        month, day, year = (int(p) for p in parts)
        try:
            date(year, month, day)
            return True
        except ValueError:
            return False
    return False


@request_rule(
    ReasonCode.REMOVAL_ORDER_MISSING,
    "For this statute the agreement requires the final removal order's date and number.",
    reads=("statute", "removal_order_date", "removal_order_number"),
)
def removal_order_missing(request: Request, ctx: Context) -> bool:
    if ctx.manifest.submitted_at is None:
        return False  # no agreement can apply; NO_AGREEMENT says it
    agreement = ctx.policy.agreement_for(ctx.manifest.agency, ctx.manifest.submitted_at.date())
    if agreement is None or not _needs_order(request.statute, agreement.removal_order_required_for):
        return False
    has_order = _readable_date(request.removal_order_date.strip()) and not is_blank(
        request.removal_order_number
    )
    return not has_order


@lru_cache(maxsize=4096)  # a statute field recurs on most rows of a batch
def _needs_order(statute: str, required: tuple[Citation, ...]) -> bool:
    """Whether a citation of the statute field is within one the agreement names."""
    return any(
        c is not None and any(c.within(r) for r in required)
        for c in (parse_citation(part) for part in split_list(statute))
    )
