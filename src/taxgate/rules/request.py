"""What the written request must set forth: 26 U.S.C. § 6103(i)(2)(B)(i)-(iv). Request scope."""

from __future__ import annotations

from functools import lru_cache

from taxgate.domain import ADDRESS_FIELDS, ReasonCode, Request
from taxgate.normalize.address import is_placeholder, state_code, street_kind, zip5
from taxgate.normalize.text import fold, is_blank, split_list
from taxgate.rules.registry import Context, request_rule


@request_rule(
    ReasonCode.MALFORMED_ROW,
    "The row could not be read, so it sets forth nothing the statute requires.",
    reads=(),  # the rules judge well-formed rows alone: a malformed row is MALFORMED_ROW and nothing else
)
def malformed_row(request: Request, ctx: Context) -> bool:
    return request.malformed


# -- (B)(i): the name and address of the taxpayer ------------------------------------------------


def _name_absent(value: str, ctx: Context) -> bool:
    return (
        not value
        or fold(value) in ctx.policy.name_placeholders
        or is_placeholder(value, frozenset())
    )


@request_rule(
    ReasonCode.NAME_MISSING,
    "The request must set forth the taxpayer's given name and surname.",
    reads=("first_name", "last_name"),
)
def name_missing(request: Request, ctx: Context) -> bool:
    return _name_absent(request.first_name, ctx) or _name_absent(request.last_name, ctx)


def _address_given(request: Request) -> bool:
    return any(getattr(request, f) for f in ADDRESS_FIELDS)


@request_rule(
    ReasonCode.ADDRESS_MISSING,
    "The request must set forth the taxpayer's address.",
    reads=ADDRESS_FIELDS,
)
def address_missing(request: Request, ctx: Context) -> bool:
    return not _address_given(request)


@lru_cache(maxsize=1024)  # the address rules run one after another on the same request
def _assess_address(
    street: str, unit: str, city: str, state: str, zip_code: str, phrases: frozenset[str]
):
    """(has a placeholder, is complete once placeholders are set aside) for one request's address."""
    fields = (street, unit, city, state, zip_code)
    usable = [("" if is_placeholder(v, phrases) else v) for v in fields]
    # A ZIP code where the street line belongs, or a ZIP code and nothing else, is a placeholder too.
    zip_as_street = bool(zip5(street)) or (street.isdigit() and len(street) in (5, 9))
    zip_alone = bool(zip_code) and not (street or unit or city or state)
    placeholder = usable != list(fields) or zip_as_street or zip_alone
    kind = street_kind(
        usable[0], usable[1]
    )  # the standard form is identification's, for fewer requests
    locality = bool(zip5(usable[4])) or bool(usable[2] and state_code(usable[3]))
    return placeholder, bool(kind and locality)


def _address(request: Request, ctx: Context) -> tuple[bool, bool]:
    return _assess_address(
        *(getattr(request, f) for f in ADDRESS_FIELDS), ctx.policy.address_placeholders
    )


@request_rule(
    ReasonCode.ADDRESS_PLACEHOLDER,
    'An address field holds a placeholder ("Failed to Provide", "NA NA", "00000", a ZIP code alone), not an address.',
    reads=ADDRESS_FIELDS,
)
def address_placeholder(request: Request, ctx: Context) -> bool:
    return _address_given(request) and _address(request, ctx)[0]


@request_rule(
    ReasonCode.ADDRESS_INCOMPLETE,
    "The address needs a street line or PO box, and either a city and state or a ZIP code.",
    reads=ADDRESS_FIELDS,
)
def address_incomplete(request: Request, ctx: Context) -> bool:
    # An address not given at all is ADDRESS_MISSING, not incomplete.
    return _address_given(request) and not _address(request, ctx)[1]


# -- (B)(ii): the taxable period or periods -------------------------------------------------------


@request_rule(
    ReasonCode.TAX_PERIOD_MISSING,
    "The request must set forth the taxable period or periods.",
    reads=("tax_periods",),
)
def tax_period_missing(request: Request, ctx: Context) -> bool:
    return not split_list(request.tax_periods)


@request_rule(
    ReasonCode.TAX_PERIOD_INVALID,
    "Every taxable period must be a past tax year within the policy's range.",
    reads=("tax_periods",),
)
def tax_period_invalid(request: Request, ctx: Context) -> bool:
    first, last = ctx.policy.thresholds.tax_year_min, ctx.as_of.year - 1
    for period in split_list(request.tax_periods):
        if not (len(period) == 4 and period.isdigit() and first <= int(period) <= last):
            return True
    return False


# -- (B)(iii): the statutory authority ------------------------------------------------------------


@request_rule(
    ReasonCode.STATUTE_MISSING,
    "The request must set forth the statute under which it is made.",
    reads=("statute",),
)
def statute_missing(request: Request, ctx: Context) -> bool:
    return not split_list(request.statute)


# -- (B)(iv): the specific reasons why disclosure is or may be relevant ---------------------------


@request_rule(
    ReasonCode.RELEVANCE_MISSING,
    "The request must state why the information is or may be relevant.",
    reads=("relevance",),
)
def relevance_missing(request: Request, ctx: Context) -> bool:
    return is_blank(request.relevance)


@request_rule(
    ReasonCode.RELEVANCE_NOT_SPECIFIC,
    "The stated reason is too short to be specific to this taxpayer.",
    reads=("relevance",),
)
def relevance_too_short(request: Request, ctx: Context) -> bool:
    text = " ".join(request.relevance.split())
    return not is_blank(text) and len(text) < ctx.policy.thresholds.relevance_min_chars
