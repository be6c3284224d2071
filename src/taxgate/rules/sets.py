"""Rule sets: which rules decide, and which identification releases the item.

- `statute` (the default): every rule of the registry, and only a positive identification
  (docs/DESIGN.md "Positive identification") releases the last known address.
- `as-practised-2025`: what the 2025 matching script did, kept so that past disclosures can be
  replayed and audited against the statute (`taxgate replay`, `taxgate audit`). A supplied TIN found
  in the master released the last known address as long as the request's address field was not
  blank or looked like a ZIP code; names were matched with addresses otherwise. The D.D.C. found on
  2026-02-26 that this path disclosed without the request setting forth the taxpayer's address, as
  26 U.S.C. § 6103(i)(2)(B)(i) requires. It is not lawful, and `taxgate process` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from taxgate.domain import ReasonCode, Request
from taxgate.rules.registry import Context, Rule


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str  # recorded on the batch and on every decision entry
    rules: tuple[Rule, ...]  # the request-scope rules that judge each request (`rules.columns`)
    releases: frozenset[ReasonCode]  # identification codes on which the item is released
    tin_path: bool  # a supplied TIN found in the master identifies the taxpayer on its own
    lawful: bool
    description: str


_ZIP_LIKE = re.compile(r"^\s*\d{5}(-?\d{4})?\s*$")


def _address_field_blank_2025(request: Request, ctx: Context) -> bool:
    """The script's one check on a request: the street field not blank, or the ZIP field a ZIP code.
    "Failed to Provide", "NA NA" and "00000" all passed it."""
    return not (request.street.strip() or _ZIP_LIKE.match(request.zip or ""))


_AS_PRACTISED_2025 = Rule(
    ReasonCode.ADDRESS_MISSING,
    "The 2025 script's only check: the street field blank and the ZIP field not a ZIP code.",
    _address_field_blank_2025,
    "request",
    reads=("street", "zip"),
)


def rule_sets(statute_version: str, registry: Sequence[Rule]) -> dict[str, RuleSet]:
    """The rule sets; `registry` is every request rule of the registry, in order (the statute's)."""
    return {
        "statute": RuleSet(
            "statute",
            statute_version,
            tuple(registry),
            frozenset({ReasonCode.ID_POSITIVE}),
            tin_path=False,
            lawful=True,
            description="26 U.S.C. § 6103(i)(2) as coded in the rule registry; positive identification only.",
        ),
        "as-practised-2025": RuleSet(
            "as-practised-2025",
            "as-practised-2025",
            (_AS_PRACTISED_2025,),
            frozenset({ReasonCode.ID_POSITIVE, ReasonCode.ID_TIN_MATCH}),
            tin_path=True,
            lawful=False,
            description="The 2025 script: a TIN match plus a non-blank address field released the address "
            "(held unlawful, D.D.C. 2026-02-26). For replay and audit only.",
        ),
    }
