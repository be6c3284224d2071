"""The requester's response is always current: an officer's review and a released hold change the
request's own row (with the entry that changed it), the batch page counts requests as they stand,
and the file says which signed checkpoint it is current to. Untouched rows are the rows written
when the batch was decided, byte for byte."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from taxgate.ledger import Ledger
from taxgate.ledger.checkpoint import parse_note
from taxgate.response import RESPONSE_COLUMNS
from taxgate.store.models import Submission

from support import LIFT, REVIEW_NOTE, console, queued_reviews

pytestmark = pytest.mark.slow  # batches end to end, reviews and orders


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _response(service) -> tuple[list[dict], dict]:
    got = service.client.get("/api/batches/1/response", headers=service.auth("requester"))
    assert got.status_code == 200, got.text
    return _rows(got.text), got.headers


def _written(service) -> list[dict]:
    with service.store.session() as session:
        folder = Path(
            session.execute(select(Submission.folder).where(Submission.id == 1)).scalar_one()
        )
    return _rows((folder / "out" / "response.csv").read_text(encoding="utf-8"))


def test_untouched_the_current_response_is_the_written_one_and_names_its_checkpoint(
    service, small_batch
):
    queued_reviews(service, small_batch)
    rows, headers = _response(service)
    with service.store.session() as session:
        signed = parse_note(Ledger(service.store).latest_checkpoint(session)).size
    assert headers["x-taxgate-checkpoint-size"] == str(signed)
    assert {r["as_of_ledger_size"] for r in rows} == {str(signed)} and {
        r["updated_ledger_index"] for r in rows
    } == {""}
    assert [{c: r[c] for c in RESPONSE_COLUMNS} for r in rows] == _written(service)
    jsonl = service.client.get(
        "/api/batches/1/response?format=jsonl", headers=service.auth("requester")
    ).text
    assert [json.loads(line) for line in jsonl.splitlines()] == rows


def test_a_review_decided_changes_the_requests_own_row(service, small_batch):
    client, officer = service.client, service.auth("officer")
    first, second, *_ = queued_reviews(service, small_batch)
    before, _ = _response(service)
    browser, _ = console(service, "requester")
    page = browser.get("/batches/1").text
    disclosed = client.post(
        "/api/reviews",
        headers=officer,
        json={"decision": first["decision"], "action": "disclose", "note": REVIEW_NOTE},
    ).json()
    declined = client.post(
        "/api/reviews",
        headers=officer,
        json={
            "decision": second["decision"],
            "action": "decline",
            "note": "Names differ: not this taxpayer.",
        },
    ).json()
    after, headers = _response(service)
    changed = {r["request_id"]: r for r, was in zip(after, before) if r != was}
    # exactly the two rows changed, beyond the checkpoint every row now names
    assert {
        k
        for k, r in changed.items()
        if {c: r[c] for c in RESPONSE_COLUMNS}
        != {c: b[c] for b in before if b["request_id"] == k for c in RESPONSE_COLUMNS}
    } == {first["request_id"], second["request_id"]}
    one, two = changed[first["request_id"]], changed[second["request_id"]]
    assert one["outcome"] == "DISCLOSED" and one["address_street"] and one["address_zip"]
    assert one["updated_ledger_index"] == str(disclosed["disclosure_index"])
    assert two["outcome"] == "NOT_DISCLOSED" and two["address_street"] == ""
    assert two["updated_ledger_index"] == str(declined["ledger_index"])
    assert int(headers["x-taxgate-checkpoint-size"]) > int(one["updated_ledger_index"])
    # the batch page counts them where they stand now, and says they were answered later
    view = client.get("/api/batches/1", headers=service.auth("requester")).json()
    was = {k: int(v) for k, v in _count(before).items()}
    assert view["outcomes"]["REVIEW"] == was["REVIEW"] - 2
    assert view["outcomes"]["DISCLOSED"] == was["DISCLOSED"] + 1
    assert view["outcomes"]["NOT_DISCLOSED"] == was.get("NOT_DISCLOSED", 0) + 1
    assert view["answered_later"] == 2 and sum(view["outcomes"].values()) == len(after)
    assert (
        "Response, as it stands now" in page and "answered after the batch was decided" not in page
    )
    assert "2 request(s) answered after the batch was decided" in browser.get("/batches/1").text


def test_a_held_review_is_held_in_the_row_then_released_in_it(service, small_batch):
    client, officer = service.client, service.auth("officer")
    first, *_ = queued_reviews(service, small_batch)
    stay = client.post(
        "/api/orders",
        headers=officer,
        json={
            "kind": "stay",
            "court": "D.D.C.",
            "docket": "1:26-cv-00002",
            "issued": "2026-01-05",
            "effective_from": "2026-01-05",
            "effective_to": None,
            "hours": None,
            "scope": {"agency": "DHS-ICE", "statutes": []},
            "notify": ["court"],
        },
    ).json()
    client.post(
        "/api/reviews",
        headers=officer,
        json={"decision": first["decision"], "action": "disclose", "note": REVIEW_NOTE},
    )
    row = next(r for r in _response(service)[0] if r["request_id"] == first["request_id"])
    assert row["outcome"] == "HELD" and row["address_street"] == "" and row["updated_ledger_index"]
    assert (
        row["reasons"].split(";")[-1] == "HELD_BY_COURT_ORDER"
    )  # what holds it, as at decision time
    client.post(f"/api/orders/{stay['id']}/lift", headers=officer, json=LIFT)
    row = next(r for r in _response(service)[0] if r["request_id"] == first["request_id"])
    released = client.get("/api/batches/1/releases", headers=service.auth("requester")).json()[
        "releases"
    ]
    assert row["outcome"] == "DISCLOSED" and row["address_street"] == released[0]["address_street"]
    assert row["updated_ledger_index"] == str(released[0]["ledger_index"])


def _count(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return counts
