"""Long lists an officer, a court monitor or an auditor can work through: the review queue and the
notices filtered, sorted, paged and exported; a request found by its id; a requester's unreadable
rows downloaded."""

from __future__ import annotations

import csv
import io
import re

import pytest

from support import console, queued_reviews

pytestmark = pytest.mark.slow  # the console in a browser


def test_the_review_queue_filters_sorts_pages_and_exports(service, small_batch):
    queue = queued_reviews(service, small_batch)
    browser, _ = console(service, "officer")
    weakest = browser.get("/reviews?order=weight").text
    weights = [
        float(w) for w in re.findall(r"<td>(\d+\.\d)</td><td>(?:\d+\.\d|none)</td>", weakest)
    ]
    assert weights == sorted(weights) and len(weights) == len(queue)
    exported = browser.get("/reviews.csv?order=weight-desc")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["request_id"] for r in rows] == [
        q["request_id"] for q in sorted(queue, key=lambda q: -q["weight"])
    ]
    none = browser.get("/reviews?batch=NO-SUCH-BATCH").text
    assert "Nothing waits for review in this selection" in none
    for code in ("ID_WEAK", "ID_ADDRESS_NOT_ON_RECORD"):
        rows = re.findall(
            r'<tr id="review-\d+">.*?</tr>', browser.get(f"/reviews?code={code}").text, re.S
        )
        assert len(rows) == sum(code in q["reasons"].split(";") for q in queue) and all(
            code in r for r in rows
        )
    assert any("ID_WEAK" in q["reasons"] for q in queue)  # the filter was tried on something


def test_a_request_is_found_by_its_id_where_the_reader_may_see_it(service, small_batch):
    first, *_ = queued_reviews(service, small_batch)
    officer, _ = console(service, "officer")
    page = officer.get(f"/requests?id={first['request_id']}").text
    assert 'class="outcome REVIEW"' in page and f'href="/reviews/{first["decision"]}"' in page
    requester, _ = console(service, "requester")
    seen = requester.get(f"/requests?id={first['request_id']}").text
    assert (
        'class="outcome REVIEW"' in seen and "ID_" not in seen.split('id="found"')[1]
    )  # no ID_* for requesters
    service.passwords.setdefault("other", "other-password-for-tests")
    other, _ = console(
        service, "other"
    )  # another agency's requester finds nothing of this agency's
    assert (
        f"No request {first['request_id']} in a batch you may see"
        in other.get(f"/requests?id={first['request_id']}").text
    )


def test_the_unreadable_rows_are_a_download(service, small_batch):
    queued_reviews(service, small_batch)
    requester, _ = console(service, "requester")
    batch = requester.get("/batches/1").text
    assert 'id="malformed-csv"' in batch
    rows = requester.get("/batches/1/malformed_rows.csv")
    assert rows.status_code == 200 and rows.text.startswith("row_number,request_id,problem")


def test_refusals_and_the_ledger_are_browsed(service, small_batch):
    queued_reviews(service, small_batch)
    auditor, _ = console(service, "auditor")
    intruder, _ = console(service, "requester")
    for _ in range(3):
        intruder.get("/reviews")  # refused, and logged
    page = auditor.get("/refusals?username=requester&status=403").text
    assert "GET /reviews" in page and "1-" in page
    assert "None in this selection" in auditor.get("/refusals?username=nobody").text
    exported = auditor.get("/refusals.csv?username=requester")
    assert exported.text.startswith("at,username,role,method,path,status,reason")
    entries = auditor.get("/ledger?start=0").text
    assert 'href="/ledger?index=0"' in entries and "later →" in entries
    assert "<td>decision</td>" in auditor.get("/ledger?start=20").text
    # entries carry TINs: only an auditor browses them
    assert 'id="entries"' not in intruder.get("/ledger?start=0").text


def test_a_batch_processed_on_the_host_is_listed_with_its_outcomes(service, world, tmp_path):
    from taxgate.pipeline import process

    result = process(world["manifest"], world["master"], tmp_path / "out", store=service.store)
    for role in ("requester", "officer"):
        browser, _ = console(service, role)
        page = browser.get("/batches").text
        assert 'id="host-batches"' in page and result.batch_ref in page, role
        assert f"DISCLOSED {result.outcomes['DISCLOSED']:,}" in page
    service.passwords.setdefault("other", "other-password-for-tests")
    other, _ = console(service, "other")  # another agency's requester does not see it
    assert result.batch_ref not in other.get("/batches").text


def test_refusals_of_different_pages_are_lines_of_their_own(service):
    from taxgate.accounts import refusals

    intruder, _ = console(service, "requester")
    for path in ("/reviews", "/reviews", "/accounting", "/reports/oversight.pdf"):
        intruder.get(path)
    mine = [r for r in refusals(service.store, 100) if r["username"] == "requester"]
    assert sorted((r["path"], r["repeats"]) for r in mine) == [
        ("/accounting", 1),
        ("/reports/oversight.pdf", 1),
        ("/reviews", 2),
    ]
