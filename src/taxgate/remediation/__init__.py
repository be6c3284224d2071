"""Remediation: past disclosures audited again, and incidents that put the unlawful ones right.

- `audit`: decide a recorded batch again under another rule set or policy (by default the statute
  as coded now) and list every disclosure it made that the audit's rules would not have made, with
  the reasons. The batch's rows file must be the one received: its SHA-256 is checked against the
  ledgered one. The audit, its figures and a digest of its list are ledgered.
- `open_incident`: turn an audit's list into a disposal request to the recipient and a notice to
  each taxpayer concerned (26 U.S.C. § 7431), with due times from the policy, all ledgered. The
  incident closes once the recipient certifies disposal (`certify_disposal`) and every notice is
  sent (`notices.mark_sent`).
"""

from taxgate.remediation.audits import (
    AUDITS,
    CATEGORIES,
    FINDING_COLUMNS,
    FOR_THE_TAXPAYER,
    AuditResult,
    RemediationError,
    audit,
    category,
    findings_digest,
    shape,
)
from taxgate.remediation.incidents import (
    DISPOSAL_CERTIFIED,
    INCIDENT_OPENED,
    RIGHTS_7431,
    IncidentStatus,
    certify_disposal,
    list_incidents,
    open_incident,
)

BINDINGS = (AUDITS, INCIDENT_OPENED, DISPOSAL_CERTIFIED)

__all__ = [
    "BINDINGS",
    "CATEGORIES",
    "FINDING_COLUMNS",
    "FOR_THE_TAXPAYER",
    "RIGHTS_7431",
    "AuditResult",
    "IncidentStatus",
    "RemediationError",
    "audit",
    "category",
    "certify_disposal",
    "findings_digest",
    "list_incidents",
    "open_incident",
    "shape",
]
