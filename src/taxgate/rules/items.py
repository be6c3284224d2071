"""What may be released: § 6103(i)(2)(C) with (b)(6) — taxpayer identity, and by this path only the
last known address. Everything the taxpayer furnished is return information under (b)(2) and needs an
ex parte order under (i)(1). Item scope: a refused item does not refuse the rest of the request."""

from __future__ import annotations

from taxgate.domain import LAST_KNOWN_ADDRESS, ReasonCode, Request
from taxgate.policy import Policy
from taxgate.rules.registry import Context, request_rule


def requested_items(items_field: str, policy: Policy) -> list[str]:
    """The items a request's `requested_items` field asks for, in canonical names; none listed
    means the last known address."""
    return list(policy.requested_items(items_field)) or [LAST_KNOWN_ADDRESS]


def refused_items(items_field: str, policy: Policy) -> list[str]:
    """Requested items this path may not release: return information, and anything unrecognised."""
    return [i for i in requested_items(items_field, policy) if i not in policy.disclosable_items]


@request_rule(
    ReasonCode.ITEM_NOT_DISCLOSABLE,
    "A requested item is return information (employer, bank, income, relatives, phone, e-mail, IP, ...): refused.",
    reads=("requested_items",),
)
def item_not_disclosable(request: Request, ctx: Context) -> bool:
    return bool(refused_items(request.requested_items, ctx.policy))
