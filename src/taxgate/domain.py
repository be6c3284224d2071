"""The vocabulary every stage shares: outcomes, reason codes, the request as received.

Nothing here imports another taxgate module; every stage imports from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Outcome(str, Enum):
    """What the requester sees for one request (DESIGN.md "Outcomes")."""

    DISCLOSED = "DISCLOSED"
    NOT_DISCLOSED = "NOT_DISCLOSED"
    REFUSED = "REFUSED"
    HELD = "HELD"
    REVIEW = "REVIEW"


class Level(str, Enum):
    """Who a reason code is about, and so who may see it."""

    BATCH = "batch"  # the whole batch is defective: every request carries it
    REQUEST = "request"  # this request is defective: the requester sees it
    ITEM = "item"  # one requested item is refused, the rest of the request stands
    AUDIT = "audit"  # identification evidence: the tax agency's auditors only


class ReasonCode(str, Enum):
    """Stable reason codes (DESIGN.md "Reason codes"). Never renumber or rename."""

    def __new__(cls, value: str, level: Level):
        member = str.__new__(cls, value)
        member._value_ = value
        member.level = level
        return member

    MALFORMED_ROW = ("MALFORMED_ROW", Level.REQUEST)
    NO_AGREEMENT = ("NO_AGREEMENT", Level.BATCH)
    REQUESTER_NOT_AUTHORIZED = ("REQUESTER_NOT_AUTHORIZED", Level.BATCH)
    RECIPIENT_SAFEGUARDS_DEFICIENT = ("RECIPIENT_SAFEGUARDS_DEFICIENT", Level.BATCH)
    NAME_MISSING = ("NAME_MISSING", Level.REQUEST)
    ADDRESS_MISSING = ("ADDRESS_MISSING", Level.REQUEST)
    ADDRESS_PLACEHOLDER = ("ADDRESS_PLACEHOLDER", Level.REQUEST)
    ADDRESS_INCOMPLETE = ("ADDRESS_INCOMPLETE", Level.REQUEST)
    TAX_PERIOD_MISSING = ("TAX_PERIOD_MISSING", Level.REQUEST)
    TAX_PERIOD_INVALID = ("TAX_PERIOD_INVALID", Level.REQUEST)
    STATUTE_MISSING = ("STATUTE_MISSING", Level.REQUEST)
    STATUTE_NOT_CRIMINAL = ("STATUTE_NOT_CRIMINAL", Level.REQUEST)
    STATUTE_TAX_ADMINISTRATION = ("STATUTE_TAX_ADMINISTRATION", Level.REQUEST)
    STATUTE_UNKNOWN = ("STATUTE_UNKNOWN", Level.REQUEST)
    CASE_NUMBER_MISSING = ("CASE_NUMBER_MISSING", Level.REQUEST)
    REMOVAL_ORDER_MISSING = ("REMOVAL_ORDER_MISSING", Level.REQUEST)
    RELEVANCE_MISSING = ("RELEVANCE_MISSING", Level.REQUEST)
    RELEVANCE_NOT_SPECIFIC = ("RELEVANCE_NOT_SPECIFIC", Level.REQUEST)
    ENGAGED_OFFICIAL_MISSING = ("ENGAGED_OFFICIAL_MISSING", Level.REQUEST)
    ENGAGED_OFFICIAL_IMPLAUSIBLE = ("ENGAGED_OFFICIAL_IMPLAUSIBLE", Level.REQUEST)
    DUPLICATE_REQUEST = ("DUPLICATE_REQUEST", Level.REQUEST)
    ITEM_NOT_DISCLOSABLE = ("ITEM_NOT_DISCLOSABLE", Level.ITEM)
    HELD_BY_COURT_ORDER = ("HELD_BY_COURT_ORDER", Level.REQUEST)
    NOTICE_PERIOD = ("NOTICE_PERIOD", Level.REQUEST)
    ID_POSITIVE = ("ID_POSITIVE", Level.AUDIT)
    ID_NO_CANDIDATE = ("ID_NO_CANDIDATE", Level.AUDIT)
    ID_WEAK = ("ID_WEAK", Level.AUDIT)
    ID_AMBIGUOUS = ("ID_AMBIGUOUS", Level.AUDIT)
    ID_ADDRESS_NOT_ON_RECORD = ("ID_ADDRESS_NOT_ON_RECORD", Level.AUDIT)
    ID_TIN_CONFLICT = ("ID_TIN_CONFLICT", Level.AUDIT)
    ID_DOB_CONFLICT = ("ID_DOB_CONFLICT", Level.AUDIT)
    # Only under the rule set "as practised in 2025" (replay and audit): the supplied TIN is in the
    # master, and nothing else was checked. Never a positive identification.
    ID_TIN_MATCH = ("ID_TIN_MATCH", Level.AUDIT)

    @property
    def requester_visible(self) -> bool:
        return self.level is not Level.AUDIT


# The columns of a request row (DESIGN.md "Data formats"), in canonical order.
REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",
    "first_name",
    "middle_name",
    "last_name",
    "suffix",
    "street",
    "unit",
    "city",
    "state",
    "zip",
    "date_of_birth",
    "tin",
    "tax_periods",
    "statute",
    "case_number",
    "removal_order_date",
    "removal_order_number",
    "engaged_official",
    "relevance",
    "requested_items",
)

ADDRESS_FIELDS: tuple[str, ...] = ("street", "unit", "city", "state", "zip")

# The one item § 6103(i)(2)(C) with (b)(6) lets this path release.
LAST_KNOWN_ADDRESS = "last_known_address"


@dataclass(slots=True)
class Request:
    """One row of a batch as the requester sent it: every field a stripped string, never None.

    `row_number` is the 1-based data row (the header is not counted) so that a row whose
    `request_id` could not be read can still be named. `parse_error` is set when the row could
    not be parsed; such a request carries only what could be salvaged.
    """

    row_number: int
    request_id: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    suffix: str = ""
    street: str = ""
    unit: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    date_of_birth: str = ""
    tin: str = ""
    tax_periods: str = ""
    statute: str = ""
    case_number: str = ""
    removal_order_date: str = ""
    removal_order_number: str = ""
    engaged_official: str = ""
    relevance: str = ""
    requested_items: str = ""
    parse_error: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def malformed(self) -> bool:
        return bool(self.parse_error)

    @property
    def display_id(self) -> str:
        """The id to answer under: the requester's own, or the row number when it is unreadable."""
        return self.request_id or f"ROW-{self.row_number}"
