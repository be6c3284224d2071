"""Every kind of document prints with every word on its page: each notice kind and the report's
layout, filled with the longest values they meet (a 64-hex SHA-256, long agency and court names,
a long street, many rows), rendered from the one HTML source to PDF by WeasyPrint."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from taxgate.notices import Notice
from taxgate.notices.documents import _TITLES, write_notice
from taxgate.remediation import RIGHTS_7431
from taxgate.render import Document, Section, bar_chart, write

from seeing import pdf_text, words_off_page

pytestmark = pytest.mark.slow  # documents rendered as PDF pages

LONG_AGENCY = "Department of Homeland Security, U.S. Immigration and Customs Enforcement, Enforcement and Removal"
STREET = {
    "street": "12345 NORTH MARTIN LUTHER KING JUNIOR MEMORIAL BOULEVARD",
    "unit": "APT 1234-B",
    "city": "WEST SACRAMENTO",
    "state": "CA",
    "zip": "95691-1234",
    "tax_year": "2024",
}
DISCLOSURES = [
    {
        "request_id": f"REQ-{i:08d}-{'X' * 30}",
        "ledger_index": 10_000_000 + i,
        "date": "2025-07-25",
        "item": "last known address",
        "finding": "the request did not set forth the taxpayer's address (§ 6103(i)(2)(B)(i))",
    }
    for i in range(60)
]
BODIES = {
    "court_receipt": {
        "received_at": "2026-12-01T17:37:36+00:00",
        "batch_ref": "DHS-ICE-" + "9" * 60,
        "agency": LONG_AGENCY,
        "rows": 1_292_924,
        "rows_sha256": "d6f0159c" * 8,
        "court": "United States District Court for the District of Columbia",
        "docket": "1:26-cv-00003",
    },
    "pre_transfer": {
        "batch_ref": "DHS-ICE-8-5000",
        "agency": LONG_AGENCY,
        "hours": 72,
        "court": "United States District Court for the District of Columbia",
        "docket": "1:26-cv-00003",
    },
    "use_bar": {
        "effective_from": "2026-02-26",
        "agency": LONG_AGENCY,
        "disclosures_received": 47_289,
        "court": "United States District Court for the District of Massachusetts",
        "docket": "1:26-cv-10001",
    },
    "disposal_request": {
        "agency": LONG_AGENCY,
        "batch_ref": "DHS-ICE-8-5000-as-practised-2025",
        "audit": 1,
        "disclosures": DISCLOSURES,
        "findings": {"address_not_set_forth": 319, "request_defective": 1_440},
    },
    "taxpayer": {
        "tin_last4": "9717",
        "name": "MARIA DE LOS ANGELES MARTINEZ GARCIA DE LA FUENTE JR",
        "mail_to": STREET,
        "recipient_agency": LONG_AGENCY,
        "disclosures": DISCLOSURES[:3],
        "rights": list(RIGHTS_7431),
    },
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_notice_kind_prints_inside_its_pages(kind, tmp_path):
    assert set(BODIES) == set(_TITLES)  # every kind there is
    notice = Notice(
        7,
        kind,
        LONG_AGENCY if kind != "taxpayer" else "Taxpayer TIN ending 9717",
        1,
        1,
        1,
        datetime(2026, 12, 4, 17, 0, tzinfo=UTC),
        None,
        BODIES[kind],
        123_456_789,
    )
    html, pdf = write_notice(notice, tmp_path)
    assert words_off_page(pdf) == []
    printed = " ".join(pdf_text(pdf).split())
    assert " ".join(_TITLES[kind].split()) in printed
    if kind == "taxpayer":
        assert (
            STREET["street"] in printed
            and BODIES[kind]["name"] in printed
            and "95691-1234" in printed
        )
    if kind == "court_receipt":
        assert "d6f0159c" in printed  # the SHA-256 wraps inside the page rather than running off it


def test_a_report_layout_with_wide_tables_and_charts_prints_inside_its_pages(tmp_path):
    labels = [f"DHS-ICE-{i}-{'5' * 40}" for i in range(45)]  # more bars than are drawn, labels cut
    document = Document(
        "A long title " * 6,
        "A subtitle " * 12,
        [("Drawn from", "x" * 300)],
        [
            Section(
                "Wide",
                ["word " * 400 + "a" * 500],
                (
                    "batch",
                    "reached identification",
                    "identified",
                    "yield",
                    "sent to review",
                    "review rate",
                    "practice",
                    "dated",
                ),
                [
                    (
                        label,
                        "1,292,924",
                        "1,201,000",
                        "92.9%",
                        "38,000",
                        "2.9%",
                        "as-practised-2025",
                        "2025-07-25",
                    )
                    for label in labels
                ],
            ),
            Section(
                "Charts",
                figures=[
                    bar_chart(
                        "h",
                        "Horizontal",
                        labels,
                        list(range(45)),
                        axis="requests",
                        reference=20,
                        reference_label="limit",
                    ),
                    bar_chart(
                        "v",
                        "Vertical",
                        [date(2026, 1, d).isoformat() for d in range(1, 32)],
                        list(range(31)),
                        horizontal=False,
                        axis="disclosures",
                    ),
                    bar_chart("empty", "Nothing yet", [], [], axis="requests"),
                ],
            ),
            Section(
                "Checkpoint", preformatted="taxgate.example/ledger\n15418\n" + "Q" * 400 + "\n"
            ),
        ],
        "footer " * 50,
    )
    _, pdf = write(document, tmp_path / "wide")
    assert words_off_page(pdf) == []
    printed = pdf_text(pdf)
    # (text inside a chart is drawn word by word: the extracted text may lose its spaces)
    assert (
        "Horizontal" in printed
        and "40 of 45 shown" in printed
        and "nothingrecordedyet" in printed.replace(" ", "")
    )


def test_a_chart_is_plain_svg_whatever_else_registered_xml_namespaces():
    """ElementTree's namespace registry is global: WeasyPrint's PDF metadata registers a default of
    its own, which once turned every chart drawn after a PDF into <ns0:svg>, drawn by no browser."""
    import weasyprint.pdf.metadata  # noqa: F401  (registers its namespaces on import)

    svg = bar_chart(
        "after-weasyprint", "Drawn after a PDF", ["a", "b"], [1, 2], axis="requests"
    ).svg
    assert svg.startswith("<svg ") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "ns0" not in svg and "xlink:" not in svg and "<title" in svg and "style=" not in svg


def test_a_command_in_backticks_reads_as_code_and_other_text_stays_text():
    """A reader sees `taxgate rules` set as a command, not two stray backticks; markup in the text
    is escaped, and a lone backtick is a character."""
    from taxgate.render import commands, to_html

    assert commands("run `taxgate rules` now") == "run <code>taxgate rules</code> now"
    assert commands("`a <b>` & `c`") == "<code>a &lt;b&gt;</code> &amp; <code>c</code>"
    assert commands("it`s one") == "it`s one"
    html = to_html(
        Document(
            "t",
            sections=[
                Section(
                    "s",
                    ["With the key, `taxgate ledger check` verifies it."],
                    figures=[
                        bar_chart("c", "c", ["a"], [1], axis="n", caption="See `taxgate rules`.")
                    ],
                )
            ],
            footer="Made by `taxgate report`.",
        )
    )
    for command in ("taxgate ledger check", "taxgate rules", "taxgate report"):
        assert f"<code>{command}</code>" in html
    visible = html.split("<main>", 1)[1]
    assert "`" not in visible.replace("<code>", "").replace("</code>", "")
