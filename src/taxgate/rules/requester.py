"""Who may ask, and to whom the agency may give: § 6103(i)(2)(A) and (p)(4). Batch scope."""

from __future__ import annotations

from datetime import date

from taxgate.domain import ReasonCode
from taxgate.intake import Manifest
from taxgate.normalize.text import fold
from taxgate.policy import Policy
from taxgate.rules.registry import batch_rule


@batch_rule(
    ReasonCode.NO_AGREEMENT,
    "No agreement with the requesting agency was in force on the day the batch was submitted.",
)
def no_agreement(manifest: Manifest, policy: Policy, as_of: date) -> bool:
    if manifest.submitted_at is None:
        return True  # without a submission date no agreement can be shown to cover the batch
    return policy.agreement_for(manifest.agency, manifest.submitted_at.date()) is None


@batch_rule(
    ReasonCode.REQUESTER_NOT_AUTHORIZED,
    "Only the head of the agency, its Inspector General, or an official the policy designates may sign.",
)
def requester_not_authorized(manifest: Manifest, policy: Policy, as_of: date) -> bool:
    agency = policy.agencies.get(manifest.agency)
    if agency is None:
        return True
    name, title = fold(manifest.signer_name), fold(manifest.signer_title)
    return not any(
        fold(s.name) == name and fold(s.title) == title and s.period.covers(as_of)
        for s in agency.signers
    )


@batch_rule(
    ReasonCode.RECIPIENT_SAFEGUARDS_DEFICIENT,
    "The recipient has open safeguard findings; the Secretary may not disclose to it until they close.",
)
def recipient_safeguards_deficient(manifest: Manifest, policy: Policy, as_of: date) -> bool:
    agency = policy.agencies.get(manifest.agency)
    return agency is not None and agency.safeguards_deficient
