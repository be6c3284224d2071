"""Notices as documents: what each kind says, rendered as HTML and PDF (`render`).

Every document names its ledger entry, so the recipient (a court, an agency, a taxpayer) can ask for
an inclusion proof that the notice was recorded when it says it was.
"""

from __future__ import annotations

from pathlib import Path

from taxgate.notices import Notice
from taxgate.render import Document, Section, write

AGENCY = "Internal Revenue Service (synthetic demo)"


def document(notice: Notice) -> Document:
    body = notice.body
    facts = [("Notice", f"{notice.id} ({notice.kind.replace('_', ' ')})"), ("To", notice.recipient),
             ("Due", notice.due_at.isoformat(timespec="minutes")),
             ("Ledger entry", str(notice.ledger_index))]
    if notice.sent_at:
        facts.append(("Sent", notice.sent_at.isoformat(timespec="minutes")))
    sections = _BUILDERS[notice.kind](body)
    footer = (f"From {AGENCY}. Recorded as entry {notice.ledger_index} of the disclosure ledger; anyone holding a "
              "ledger checkpoint can ask for a proof of that entry (taxgate ledger prove).")
    return Document(_TITLES[notice.kind], body.get("court", "") and f"{body['court']} {body.get('docket', '')}".strip(),
                    facts, sections, footer)


def write_notice(notice: Notice, out_dir: Path) -> tuple[Path, Path]:
    return write(document(notice), out_dir / f"notice-{notice.id}")


_TITLES = {
    "court_receipt": "Notice to the court: a batch of requests was received",
    "pre_transfer": "Notice before transfer of return information",
    "use_bar": "Notice to the recipient: bar on use of information received",
    "disposal_request": "Request to dispose of information disclosed without authority",
    "taxpayer": "Notice of unauthorized disclosure of your tax information",
}


def _court_receipt(body: dict) -> list[Section]:
    return [Section("What was received", [
        f"On {body.get('received_at', '')} the agency received batch {body.get('batch_ref', '')} from "
        f"{body.get('agency', '')}: {body.get('rows', 0):,} requests under 26 U.S.C. § 6103(i)(2). The rows file's "
        f"SHA-256 is {body.get('rows_sha256', '')}.",
        "This notice is given under the order named above, within the hours it allows after receipt.",
    ])]


def _pre_transfer(body: dict) -> list[Section]:
    hours = body.get("hours")
    return [Section("Transfer pending", [
        f"The agency intends to transfer return information in response to batch {body.get('batch_ref', '')} from "
        f"{body.get('agency', '')}. Nothing is transferred until {hours} hours after this notice is sent, as the order "
        "requires; the held items are then released once, each recorded in the disclosure ledger.",
    ])]


def _use_bar(body: dict) -> list[Section]:
    return [Section("What the order bars", [
        f"From {body.get('effective_from', '')}, {body.get('agency', '')} may not inspect, use, copy or rely on the "
        f"information it received from this agency under 26 U.S.C. § 6103(i)(2). By the ledger, "
        f"{body.get('disclosures_received', 0):,} disclosures had been made to it when the order was recorded.",
    ])]


def _disposal_request(body: dict) -> list[Section]:
    findings = body.get("findings", {})
    items = body.get("disclosures", [])
    return [
        Section("What we ask", [
            f"Audit {body.get('audit', '')} of batch {body.get('batch_ref', '')} found {len(items):,} disclosures to "
            f"{body.get('agency', '')} that 26 U.S.C. § 6103(i)(2) did not authorise. Please dispose of the information "
            "disclosed in each, including copies and anything derived from it, stop any use of it, and certify to us "
            "in writing who disposed of it and when.",
        ], ("finding", "disclosures"), [(k.replace("_", " "), f"{v:,}") for k, v in findings.items()]),
        Section("The disclosures", [], ("request", "date disclosed", "ledger entry", "finding"),
                [(d["request_id"], d["date"], str(d["ledger_index"]), d["finding"].replace("_", " ")) for d in items]),
    ]


def _taxpayer(body: dict) -> list[Section]:
    address = body.get("mail_to", {})
    lines = [address.get("street", ""), address.get("unit", ""),
             " ".join(p for p in (address.get("city", ""), address.get("state", ""), address.get("zip", "")) if p)]
    return [
        Section("Mail to", [", ".join(x for x in lines if x)]),
        Section("What happened", [
            f"We disclosed information about you (taxpayer identification number ending {body.get('tin_last4', '')}) "
            f"to {body.get('recipient_agency', '')} on the date(s) below. A later review found that the law did not "
            "authorise these disclosures. We have asked the recipient to dispose of the information.",
        ], ("date of disclosure", "what was disclosed", "why it was not authorised", "ledger entry"),
            [(d["date"], d["item"], d["finding"], str(d["ledger_index"])) for d in body.get("disclosures", [])]),
        Section("Your rights under 26 U.S.C. § 7431", list(body.get("rights", []))),
    ]


_BUILDERS = {"court_receipt": _court_receipt, "pre_transfer": _pre_transfer, "use_bar": _use_bar,
             "disposal_request": _disposal_request, "taxpayer": _taxpayer}
