"""The vocabulary every stage shares: outcomes, reason codes, the request as received.

Nothing here imports another taxgate module; every stage imports from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Outcome(str, Enum):
    """What the requester sees for one request (docs/DESIGN.md "Outcomes")."""

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


_6103 = "26 U.S.C. § 6103"


class ReasonCode(str, Enum):
    """Stable reason codes (docs/DESIGN.md "Reason codes"). Never renumber or rename.

    Each code carries, in this one place, who it is about (`level`), the provisions it applies
    (`citation`, full citations separated by "; ", each readable by `normalize.statute`) and what it
    means for the requester (`meaning`, one line). `taxgate rules` lists them and every response
    ships them as its legend.
    """

    def __new__(cls, value: str, level: Level, citation: str, meaning: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.level = level
        member.citation = citation
        member.meaning = meaning
        return member

    MALFORMED_ROW = (
        "MALFORMED_ROW",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)",
        "The row could not be read, so it sets forth nothing the statute requires; send it again, readable.",
    )
    NO_AGREEMENT = (
        "NO_AGREEMENT",
        Level.BATCH,
        f"{_6103}(i)(2)(A); {_6103}(p)(4)",
        "No agreement between your agency and the tax agency was in force on the day the batch was submitted.",
    )
    REQUESTER_NOT_AUTHORIZED = (
        "REQUESTER_NOT_AUTHORIZED",
        Level.BATCH,
        f"{_6103}(i)(2)(A)",
        "The batch is not signed by the agency's head, its Inspector General or an official "
        "the policy designates.",
    )
    RECIPIENT_SAFEGUARDS_DEFICIENT = (
        "RECIPIENT_SAFEGUARDS_DEFICIENT",
        Level.BATCH,
        f"{_6103}(p)(4)",
        "Your agency has open safeguard findings; nothing is disclosed to it until they close.",
    )
    NAME_MISSING = (
        "NAME_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(i)",
        "The request must set forth the taxpayer's given name and surname.",
    )
    ADDRESS_MISSING = (
        "ADDRESS_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(i)",
        "The request must set forth the taxpayer's address.",
    )
    ADDRESS_PLACEHOLDER = (
        "ADDRESS_PLACEHOLDER",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(i)",
        'An address field holds a placeholder ("Failed to Provide", "NA NA", "00000", a ZIP code '
        "alone), not an address.",
    )
    ADDRESS_INCOMPLETE = (
        "ADDRESS_INCOMPLETE",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(i)",
        "The address needs a street line or PO box, and a city and state or a ZIP code.",
    )
    TAX_PERIOD_MISSING = (
        "TAX_PERIOD_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(ii)",
        "The request must set forth the taxable period or periods.",
    )
    TAX_PERIOD_INVALID = (
        "TAX_PERIOD_INVALID",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(ii)",
        "Every taxable period must be a past tax year within the policy's range.",
    )
    STATUTE_MISSING = (
        "STATUTE_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(iii)",
        "The request must set forth the statute under which it is made.",
    )
    STATUTE_NOT_CRIMINAL = (
        "STATUTE_NOT_CRIMINAL",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "The cited statute is civil; this path serves criminal investigations only.",
    )
    STATUTE_TAX_ADMINISTRATION = (
        "STATUTE_TAX_ADMINISTRATION",
        Level.REQUEST,
        f"{_6103}(i)(2)(A); {_6103}(b)(4)",
        "A title-26 statute is tax administration, which this path excludes.",
    )
    STATUTE_UNKNOWN = (
        "STATUTE_UNKNOWN",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "The cited statute is not in the catalog of statutes this path serves; it is refused, never "
        "guessed.",
    )
    CASE_NUMBER_MISSING = (
        "CASE_NUMBER_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "The request must name the investigation or proceeding (its case number).",
    )
    REMOVAL_ORDER_MISSING = (
        "REMOVAL_ORDER_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "For this statute the agreement requires the final removal order's date and number.",
    )
    RELEVANCE_MISSING = (
        "RELEVANCE_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(iv)",
        "The request must state why the information is or may be relevant.",
    )
    RELEVANCE_NOT_SPECIFIC = (
        "RELEVANCE_NOT_SPECIFIC",
        Level.REQUEST,
        f"{_6103}(i)(2)(B)(iv)",
        "The reason is too short, or the same text stands on more of your agency's requests "
        "within the policy's window (earlier batches included) than the policy allows.",
    )
    ENGAGED_OFFICIAL_MISSING = (
        "ENGAGED_OFFICIAL_MISSING",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "The request must name the officer personally and directly engaged in the case.",
    )
    ENGAGED_OFFICIAL_IMPLAUSIBLE = (
        "ENGAGED_OFFICIAL_IMPLAUSIBLE",
        Level.REQUEST,
        f"{_6103}(i)(2)(A)",
        "The named officer is on more of your agency's cases within the policy's window "
        "(earlier batches included) than one person can be personally and directly "
        "engaged in.",
    )
    DUPLICATE_REQUEST = (
        "DUPLICATE_REQUEST",
        Level.REQUEST,
        f"{_6103}(i)(2)(B); {_6103}(p)(3)(A)",
        "The request id was used before by your agency, or the same person and case was asked "
        "before and answered or is pending: each request is decided once.",
    )
    ITEM_NOT_DISCLOSABLE = (
        "ITEM_NOT_DISCLOSABLE",
        Level.ITEM,
        f"{_6103}(i)(2)(C); {_6103}(b)(2); {_6103}(b)(6)",
        "A requested item is return information, which this path never releases; the rest of "
        "the request stands.",
    )
    # Holds come from a court's order, not from § 6103; the order (court, docket) is in the decision's
    # ledger entry. 5 U.S.C. § 705 is the power under which a court stays an agency's action.
    HELD_BY_COURT_ORDER = (
        "HELD_BY_COURT_ORDER",
        Level.REQUEST,
        "5 U.S.C. § 705",
        "A court order in force (a stay or injunction) holds the disclosure; it is released only "
        "when the order ends.",
    )
    NOTICE_PERIOD = (
        "NOTICE_PERIOD",
        Level.REQUEST,
        "5 U.S.C. § 705",
        "A court order requires notice to the court before transfer; the item is held until the "
        "notice period runs.",
    )
    ID_POSITIVE = (
        "ID_POSITIVE",
        Level.AUDIT,
        f"{_6103}(i)(2)(B)(i); {_6103}(i)(2)(C)",
        "One taxpayer, whose name and an address filed from agree with the request: positively "
        "identified.",
    )
    ID_NO_CANDIDATE = (
        "ID_NO_CANDIDATE",
        Level.AUDIT,
        f"{_6103}(a)",
        "No taxpayer of the master is near the request; nothing of anyone's is released.",
    )
    ID_WEAK = (
        "ID_WEAK",
        Level.AUDIT,
        f"{_6103}(a)",
        "The best candidate's evidence is below the policy's threshold; nothing is released.",
    )
    ID_AMBIGUOUS = (
        "ID_AMBIGUOUS",
        Level.AUDIT,
        f"{_6103}(a)",
        "A second taxpayer fits within the policy's margin (family, shared home, Jr/Sr); nothing is "
        "released.",
    )
    ID_ADDRESS_NOT_ON_RECORD = (
        "ID_ADDRESS_NOT_ON_RECORD",
        Level.AUDIT,
        f"{_6103}(i)(2)(B)(i)",
        "The name agrees but the address set forth is not one the taxpayer ever filed from.",
    )
    ID_TIN_CONFLICT = (
        "ID_TIN_CONFLICT",
        Level.AUDIT,
        f"{_6103}(a)",
        "The supplied TIN is not the candidate's: the request is about someone else.",
    )
    ID_DOB_CONFLICT = (
        "ID_DOB_CONFLICT",
        Level.AUDIT,
        f"{_6103}(a)",
        "The supplied date of birth contradicts the candidate's.",
    )
    # Only under the rule set "as practised in 2025" (replay and audit): the supplied TIN is in the
    # master, and nothing else was checked. Never a positive identification.
    ID_TIN_MATCH = (
        "ID_TIN_MATCH",
        Level.AUDIT,
        f"{_6103}(i)(2)(B)(i)",
        "2025 practice only: the supplied TIN is on file and nothing else was checked (held unlawful).",
    )

    @property
    def requester_visible(self) -> bool:
        return self.level is not Level.AUDIT


# The columns of a request row (docs/DESIGN.md "Data formats"), in canonical order.
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


def unstorable_text(value) -> str | None:
    """What in a parsed JSON document no store can keep as text, or None: a NUL (PostgreSQL's
    text refuses it where SQLite keeps it, so the two stores would answer differently) or a lone
    surrogate (neither store's driver can encode it). Keys and values, at any depth, without
    recursion (a hostile document may be as deep as its parser allowed)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a lone surrogate (text that is not Unicode)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
