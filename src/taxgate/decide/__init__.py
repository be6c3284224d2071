"""Decide: one outcome per request from the rules' codes, the items asked for and identification.

The default answer is no: DISCLOSED needs every rule to pass, a disclosable item to be asked for,
and a positive identification. Nothing else releases anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from taxgate.domain import Outcome, ReasonCode
from taxgate.identify import Identification
from taxgate.rules import is_refusal


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    codes: tuple[ReasonCode, ...]  # every code, audit codes included
    refused_items: tuple[str, ...]
    matched_tin: str = ""
    runner_up_tin: str = ""
    match_weight: float | None = None
    runner_up_weight: float | None = None

    @property
    def requester_codes(self) -> tuple[ReasonCode, ...]:
        """What the requester may be told; identification evidence never leaves the agency, so a
        NOT_DISCLOSED answer does not say whether a record exists."""
        return tuple(c for c in self.codes if c.requester_visible)


def decide(
    codes: list[ReasonCode],
    refused_items: list[str],
    wants_disclosable_item: bool,
    identification: Identification | None,
    releases: frozenset[ReasonCode] = frozenset({ReasonCode.ID_POSITIVE}),
) -> Decision:
    """`releases`: the identification codes that release the item; only ID_POSITIVE, unless a past
    practice is being replayed (`rules.sets`)."""
    refused = tuple(refused_items)
    if any(is_refusal(c) for c in codes) or not wants_disclosable_item:
        return Decision(Outcome.REFUSED, tuple(codes), refused)
    if identification is None:  # not identified at all: never a reason to disclose
        return Decision(
            Outcome.NOT_DISCLOSED, tuple(codes) + (ReasonCode.ID_NO_CANDIDATE,), refused
        )
    all_codes = tuple(codes) + (identification.code,)
    evidence = (
        identification.matched_tin,
        identification.runner_up_tin,
        identification.match_weight,
        identification.runner_up_weight,
    )
    if identification.code in releases:
        return Decision(Outcome.DISCLOSED, all_codes, refused, *evidence)
    if identification.review:  # near the line: a disclosure officer decides, and that is ledgered
        return Decision(Outcome.REVIEW, all_codes, refused, *evidence)
    return Decision(Outcome.NOT_DISCLOSED, all_codes, refused, *evidence)
