"""The § 6103(p)(3)(A) accounting an auditor reads and a taxpayer is owed: each request as it
stands now, who asked and why, under which practice, with a CSV and a letter; the TIN never in a URL."""

from __future__ import annotations

import csv
import io
import re

import pytest

from taxgate.reports import ACCOUNTING_COLUMNS

from seeing import pdf_text, words_off_page
from support import REVIEW_NOTE, console, queued_reviews

pytestmark = pytest.mark.slow  # batches end to end, reports from the store


def test_the_accounting_counts_a_review_as_decided_and_exports_a_csv_and_a_letter(
    service, small_batch, tmp_path
):
    first, *_ = queued_reviews(service, small_batch)
    tin = first["matched_tin"]
    service.client.post(
        "/api/reviews",
        headers=service.auth("officer"),
        json={"decision": first["decision"], "action": "disclose", "note": REVIEW_NOTE},
    )
    browser, csrf = console(service, "auditor")
    # a GET carries no TIN: the query string is not read, so no log or history keeps one
    assert "No request named" not in browser.get(f"/accounting?tin={tin}").text
    page = browser.post("/accounting", data={"csrf": csrf, "tin": tin}).text
    row = next(r for r in page.split("<tr>") if f"<td>{first['request_id']}</td>" in r)
    assert (
        'class="outcome DISCLOSED"' in row
        and "REVIEW" not in row
        and "26 U.S.C. § 6103(i)(2)" in row
    )
    assert "DHS-ICE" in row and "case " in row
    exported = browser.post("/accounting", data={"csrf": csrf, "tin": tin, "fmt": "csv"})
    assert exported.status_code == 200 and tin[-4:] in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert tuple(rows[0]) == ACCOUNTING_COLUMNS
    mine = next(r for r in rows if r["request_id"] == first["request_id"])
    assert mine["outcome"] == "DISCLOSED" and mine["disclosed"] and mine["statute"]
    letter = browser.post("/accounting", data={"csrf": csrf, "tin": tin, "fmt": "pdf"})
    assert letter.headers["content-type"] == "application/pdf"
    (tmp_path / "letter.pdf").write_bytes(letter.content)
    assert words_off_page(tmp_path / "letter.pdf") == []
    printed = " ".join(pdf_text(tmp_path / "letter.pdf").split())
    assert (
        "26 U.S.C. § 6103(p)(3)(A)" in printed
        and f"ending {tin[-4:]}" in printed
        and "DHS-ICE" in printed
    )
    assert tin not in printed and not re.search(
        r"ledger|ID_[A-Z]", printed
    )  # nothing of the gateway's own
    # a wrong TIN is one line, not a page of nothing
    assert (
        "A TIN has nine digits"
        in browser.post("/accounting", data={"csrf": csrf, "tin": "12-34"}).text
    )
