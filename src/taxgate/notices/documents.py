"""Notices as documents: what each kind says, rendered as HTML and PDF (`render`).

Every document names its ledger entry, so the recipient (a court, an agency, a taxpayer) can ask for
an inclusion proof that the notice was recorded when it says it was.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from taxgate.notices import Notice
from taxgate.render import Document, Section, write

AGENCY = "Internal Revenue Service (synthetic demo)"
RETURN_ADDRESS = (
    "Disclosure Office (synthetic demo)",
    "Internal Revenue Service",
    "P.O. Box 0000",
    "Washington, DC 20000",
)


def document(notice: Notice, today: date | None = None) -> Document:
    if notice.kind == "taxpayer":
        return _letter(notice, today or date.today())
    body = notice.body
    facts = [
        ("Notice", f"{notice.id} ({notice.kind.replace('_', ' ')})"),
        ("To", notice.recipient),
        ("Due", notice.due_at.strftime("%B %-d, %Y, %H:%M UTC")),
        ("Ledger entry", str(notice.ledger_index)),
    ]
    if notice.sent_at:
        facts.append(("Sent", notice.sent_at.isoformat(timespec="minutes")))
    sections = _BUILDERS[notice.kind](body)
    footer = (
        f"From {AGENCY}. Recorded as entry {notice.ledger_index} of the disclosure ledger; anyone holding a "
        "ledger checkpoint can ask us for a proof of that entry."
    )
    return Document(
        _TITLES[notice.kind],
        body.get("court", "") and f"{body['court']} {body.get('docket', '')}".strip(),
        facts,
        sections,
        footer,
    )


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
    return [
        Section(
            "What was received",
            [
                f"On {body.get('received_at', '')} the agency received batch {body.get('batch_ref', '')} from "
                f"{body.get('agency', '')}: {body.get('rows', 0):,} requests under 26 U.S.C. § "
                "6103(i)(2). The rows file's "
                f"SHA-256 is {body.get('rows_sha256', '')}.",
                "This notice is given under the order named above, within the hours it allows after receipt.",
            ],
        )
    ]


def _pre_transfer(body: dict) -> list[Section]:
    hours = body.get("hours")
    return [
        Section(
            "Transfer pending",
            [
                "The agency intends to transfer return information in response to batch "
                f"{body.get('batch_ref', '')} from "
                f"{body.get('agency', '')}. Nothing is transferred until {hours} hours after this "
                "notice is sent, as the order "
                "requires; the held items are then released once, each recorded in the disclosure ledger.",
            ],
        )
    ]


def _use_bar(body: dict) -> list[Section]:
    return [
        Section(
            "What the order bars",
            [
                f"From {body.get('effective_from', '')}, {body.get('agency', '')} may not "
                "inspect, use, copy or rely on the "
                f"information it received from this agency under 26 U.S.C. § 6103(i)(2). By the ledger, "
                f"{body.get('disclosures_received', 0):,} disclosures had been made to it when the order was recorded.",
            ],
        )
    ]


def _disposal_request(body: dict) -> list[Section]:
    findings = body.get("findings", {})
    items = body.get("disclosures", [])
    return [
        Section(
            "What we ask",
            [
                f"Audit {body.get('audit', '')} of batch {body.get('batch_ref', '')} found "
                f"{len(items):,} disclosures to "
                f"{body.get('agency', '')} that 26 U.S.C. § 6103(i)(2) did not authorise. Please "
                "dispose of the information "
                "disclosed in each, including copies and anything derived from it, stop any use "
                "of it, and certify to us "
                "in writing, at the address below, who disposed of it and when, quoting this notice's number.",
            ],
            ("finding", "disclosures"),
            [
                (body.get("labels", {}).get(k, k.replace("_", " ")), f"{v:,}")
                for k, v in findings.items()
            ],
            lines=list(RETURN_ADDRESS),
        ),
        Section(
            "The disclosures",
            [],
            ("request", "date disclosed", "ledger entry", "finding"),
            [
                (
                    d["request_id"],
                    d["date"],
                    str(d["ledger_index"]),
                    body.get("labels", {}).get(d["finding"], d["finding"].replace("_", " ")),
                )
                for d in items
            ],
        ),
    ]


def _letter(notice: Notice, today: date) -> Document:
    """The § 7431 notice as a letter a taxpayer can read: to them by name at their address, what left,
    when and why it should not have, what we did, their rights. None of the gateway's own fields
    (notice kind, due times, ledger entries, commands): the notice's number is the reference."""
    body = notice.body
    address = body.get("mail_to", {})
    mail_to = [
        body.get("name") or "To the taxpayer",
        " ".join(p for p in (address.get("street", ""), address.get("unit", "")) if p),
        " ".join(
            p
            for p in (address.get("city", ""), address.get("state", ""), address.get("zip", ""))
            if p
        ),
    ]
    disclosures = body.get("disclosures", [])
    dates = sorted({d["date"] for d in disclosures})
    return Document(
        _TITLES["taxpayer"],
        AGENCY,
        [
            (
                "Date of this letter",
                (notice.sent_at.date() if notice.sent_at else today).strftime("%B %-d, %Y"),
            ),
            ("Our reference", f"Notice {notice.id}"),
            ("About", f"Your taxpayer identification number ending {body.get('tin_last4', '')}"),
        ],
        [
            Section("Mail to", lines=[line for line in mail_to if line]),
            Section(
                "What happened",
                [
                    f"On {_spelled(dates)}, we gave "
                    f"{body.get('recipient_agency', 'another agency')} your last known address "
                    "from our records, in answer to a request that named you or that we matched "
                    "to your record. A later "
                    "review found that the law did not allow us to give it, for the reason below. "
                    "We have asked that agency "
                    "to destroy the information and every copy of it, and to stop using it.",
                ],
                ("date given", "what was given", "why the law did not allow it"),
                [(_spelled([d["date"]]), d["item"], d["finding"]) for d in disclosures],
            ),
            Section("Your rights under 26 U.S.C. § 7431", list(body.get("rights", []))),
            Section(
                "Questions",
                [
                    "Write to us at the address below, quoting our reference (notice "
                    f"{notice.id}). You may also ask us for "
                    "the accounting of every disclosure of your tax information that the law requires us to keep "
                    "(26 U.S.C. § 6103(p)(3)(A)).",
                ],
                lines=list(RETURN_ADDRESS),
            ),
        ],
        f"From {AGENCY}.",
    )


def _spelled(dates: list[str]) -> str:
    days = [date.fromisoformat(d).strftime("%B %-d, %Y") for d in dates]
    return (
        days[0]
        if len(days) == 1
        else ", ".join(days[:-1]) + " and " + days[-1]
        if days
        else "a date we recorded"
    )


_BUILDERS = {
    "court_receipt": _court_receipt,
    "pre_transfer": _pre_transfer,
    "use_bar": _use_bar,
    "disposal_request": _disposal_request,
}
