"""The service's API end to end (on SQLite, and on PostgreSQL in CI): uploads and their checks,
background decisions with progress, the response, the review queue, orders, the ledger."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from taxgate.domain import ReasonCode
from taxgate.ledger import Ledger, check_proof
from taxgate.store.models import DecisionRecord, Disclosure, HeldItem, Review, Submission

from support import LIFT, Service, control_store, findings, upload_files

pytestmark = pytest.mark.slow  # the service with batches end to end


def nothing_kept(service: Service) -> bool:
    with service.store.session() as session:
        rows = session.execute(select(func.count(Submission.id))).scalar_one()
    kept = (
        list(service.settings.submissions.glob("*"))
        if service.settings.submissions.exists()
        else []
    )
    pending = (
        list(service.settings.incoming.glob("*")) if service.settings.incoming.exists() else []
    )
    return rows == 0 and not kept and not pending


def test_a_batch_submitted_is_decided_in_the_background(service, small_batch):
    client = service.client
    sent = service.submit(small_batch)
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert sent.headers["location"] == f"/api/batches/{body['id']}" and body["status"] == "queued"
    queued = client.get(f"/api/batches/{body['id']}", headers=service.auth("requester")).json()
    assert queued["status"] == "queued" and queued["decided"] == 0
    assert (
        client.get(
            f"/api/batches/{body['id']}/response", headers=service.auth("requester")
        ).status_code
        == 409
    )

    assert service.run_queued() == 1
    done = client.get(f"/api/batches/{body['id']}", headers=service.auth("requester")).json()
    total = done["rows"]
    assert done["status"] == "done" and total == done["decided"] >= 300
    assert sum(done["outcomes"].values()) == total
    response = client.get(f"/api/batches/{body['id']}/response", headers=service.auth("requester"))
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert response.headers["content-type"].startswith("text/csv") and len(rows) == total
    assert {r["outcome"] for r in rows} <= {
        "DISCLOSED",
        "REFUSED",
        "NOT_DISCLOSED",
        "REVIEW",
        "HELD",
    }
    assert all(r["ledger_index"] for r in rows)  # every row: an outcome and its ledger entry
    assert all(r["reasons"] for r in rows if r["outcome"] == "REFUSED")  # and why not
    lines = client.get(
        f"/api/batches/{body['id']}/response?format=jsonl", headers=service.auth("requester")
    ).text
    assert len(lines.splitlines()) == total

    # the legend beside it: every code the requester was given, its statute and meaning, and how often
    legend = client.get(f"/api/batches/{body['id']}/reasons", headers=service.auth("requester"))
    assert legend.status_code == 200 and legend.headers["content-type"].startswith("text/csv")
    codes = {r["code"]: r for r in csv.DictReader(io.StringIO(legend.text))}
    given = Counter(c for r in rows for c in r["reasons"].split(";") if c)
    assert given and all(int(codes[c]["requests"]) == n for c, n in given.items())
    assert all(
        codes[c]["citation"] == ReasonCode(c).citation and codes[c]["meaning"] for c in given
    )
    assert not any(c.startswith("ID_") for c in codes), (
        "identification codes are the auditors' alone"
    )
    listed = client.get("/api/reasons", headers=service.auth("auditor")).json()["reasons"]
    assert {r["code"] for r in listed} == {c.value for c in ReasonCode}
    mine = client.get("/api/reasons", headers=service.auth("requester")).json()["reasons"]
    assert {r["code"] for r in mine} == set(codes)

    # the same file again is the same batch: answered as before, nothing decided twice
    again = service.submit(small_batch).json()
    service.run_queued()
    assert (
        client.get(f"/api/batches/{again['id']}", headers=service.auth("requester")).json()["batch"]
        == done["batch"]
    )
    with service.store.session() as session:
        assert session.execute(select(func.count(DecisionRecord.id))).scalar_one() == total


@pytest.mark.parametrize(
    "case, status, reason",
    [
        ("not multipart", 415, "multipart/form-data"),
        ("no rows part", 422, "'rows' part is missing"),
        ("manifest not JSON", 422, "not valid JSON"),
        ("another agency", 403, "this account submits for DHS-ICE; the manifest names OTHER"),
        ("path outside", 422, "plain relative file name"),
        ("named parquet", 415, "the manifest says csv"),
        ("binary", 415, "binary data"),
        ("header not UTF-8", 415, "cannot be read as CSV"),
        ("nested manifest", 422, "nested too deeply"),
        ("rows inside the manifest", 422, "manifest.json and out/ are the service's own"),
        ("rows under out", 422, "manifest.json and out/ are the service's own"),
        ("NUL in the path", 422, "holds a NUL character, which no field can"),
        ("tiny parquet", 415, "not a readable Parquet file"),
        ("jsonl not json lines", 415, "not JSON Lines"),
        ("no header", 422, "the header names none of the request columns"),
        ("fake parquet", 415, "not a readable Parquet file"),
        ("text as parquet", 415, "not a readable Parquet file"),
        ("too large", 413, "larger than the limit"),
    ],
)
def test_a_bad_upload_gets_a_clear_4xx_and_changes_nothing(
    store, world, tmp_path, small_batch, case, status, reason
):
    service = Service(store, world, tmp_path, max_rows_bytes=1 << 20)
    manifest = json.loads(small_batch.read_text())
    rows = (small_batch.parent / manifest["requests"]).read_bytes()
    dump = lambda **change: json.dumps({**manifest, **change}).encode()  # noqa: E731
    headers = service.auth("requester")
    if case == "not multipart":
        answer = service.client.post("/api/batches", headers=headers, json=manifest)
    elif case == "no rows part":
        answer = service.client.post(
            "/api/batches", headers=headers, files={"manifest": ("m.json", dump())}
        )
    else:
        parts = {
            "manifest not JSON": dict(manifest_bytes=b"{not json"),
            "another agency": dict(manifest_bytes=dump(agency="OTHER")),
            "path outside": dict(manifest_bytes=dump(requests="../../etc/requests.csv")),
            "named parquet": dict(rows_name="requests.parquet"),
            "binary": dict(rows=b"request_id,first_name\x00\x01\x02"),
            "header not UTF-8": dict(rows=b"request_id,first_\xff\xfe\n1,2\n"),
            "nested manifest": dict(manifest_bytes=b"[" * 100_000 + b"]" * 100_000),
            "rows inside the manifest": dict(manifest_bytes=dump(requests="manifest.json/x.csv")),
            "rows under out": dict(manifest_bytes=dump(requests="out/requests.csv")),
            "NUL in the path": dict(manifest_bytes=dump(requests="requests\x00.csv")),
            "tiny parquet": dict(
                manifest_bytes=dump(requests="requests.parquet"),
                rows_name="requests.parquet",
                rows=b"PA",
            ),
            "jsonl not json lines": dict(
                manifest_bytes=dump(requests="requests.jsonl"), rows_name="requests.jsonl"
            ),
            "no header": dict(rows=b"1,2,3\n4,5,6\n"),
            "fake parquet": dict(
                manifest_bytes=dump(requests="requests.parquet"),
                rows_name="requests.parquet",
                rows=b"PAR1 not really PAR1",
            ),
            "text as parquet": dict(
                manifest_bytes=dump(requests="requests.parquet"), rows_name="requests.parquet"
            ),
            "too large": dict(rows=rows + b"x" * (1 << 20)),
        }[case]
        answer = service.client.post(
            "/api/batches", headers=headers, files=upload_files(small_batch, **parts)
        )
    assert answer.status_code == status, answer.text
    assert reason in answer.json()["detail"]
    assert nothing_kept(service)


def test_uploads_are_rate_limited_per_requester(store, world, tmp_path, small_batch):
    service = Service(store, world, tmp_path, uploads_per_minute=2)
    assert [service.submit(small_batch).status_code for _ in range(3)] == [202, 202, 429]
    refused = service.submit(small_batch)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "too many uploads" in refused.json()["detail"]


def test_the_csv_response_is_safe_in_a_spreadsheet(service, small_batch, tmp_path):
    """A request id that a spreadsheet would run as a formula is written as text in CSV; JSON Lines
    keep it exactly."""
    manifest = json.loads(small_batch.read_text())
    rows = list(
        csv.reader(
            io.StringIO((small_batch.parent / manifest["requests"]).read_text(errors="replace"))
        )
    )[:6]
    rows[1][0] = '=HYPERLINK("http://example.invalid";"x")'
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    assert service.submit(small_batch, rows=out.getvalue().encode()).status_code == 202
    service.run_queued()
    text = service.client.get("/api/batches/1/response", headers=service.auth("requester")).text
    first = list(csv.DictReader(io.StringIO(text)))[0]
    assert first["request_id"] == '\'=HYPERLINK("http://example.invalid";"x")'
    jsonl = service.client.get(
        "/api/batches/1/response?format=jsonl", headers=service.auth("requester")
    ).text
    assert (
        json.loads(jsonl.splitlines()[0])["request_id"]
        == '=HYPERLINK("http://example.invalid";"x")'
    )


def decided(service: Service, batch) -> list[dict]:
    assert service.submit(batch).status_code == 202
    service.run_queued()
    reviews = service.client.get("/api/reviews", headers=service.auth("officer")).json()
    assert reviews["total"] == len(reviews["reviews"]) >= 2
    return reviews["reviews"]


def test_an_officer_decides_a_review_and_it_is_ledgered(service, small_batch):
    client, officer = service.client, service.auth("officer")
    queue = decided(service, small_batch)
    first, second = queue[0], queue[1]
    seen = client.get(f"/api/reviews/{first['decision']}", headers=officer).json()
    assert seen["request"]["last_name"] and seen["candidate"]["tin"] == first["matched_tin"]
    assert (
        seen["candidate"]["records"] and seen["fields"]
    )  # the record as filed, and the per-field evidence
    assert seen["review"] is None

    short = client.post(
        "/api/reviews",
        headers=officer,
        json={"decision": first["decision"], "action": "disclose", "note": "ok"},
    )
    assert short.status_code == 422  # an officer says why
    done = client.post(
        "/api/reviews",
        headers=officer,
        json={
            "decision": first["decision"],
            "action": "disclose",
            "note": "Same person: the street is misspelled.",
        },
    )
    assert done.status_code == 201, done.text
    assert done.json()["outcome"] == "DISCLOSED" and "disclosure_index" in done.json()
    twice = client.post(
        "/api/reviews",
        headers=officer,
        json={
            "decision": first["decision"],
            "action": "decline",
            "note": "Changed my mind about this one.",
        },
    )
    assert twice.status_code == 409 and "was decided by officer" in twice.json()["detail"]
    declined = client.post(
        "/api/reviews",
        headers=officer,
        json={
            "decision": second["decision"],
            "action": "decline",
            "note": "Names differ: not this taxpayer.",
        },
    )
    assert declined.json()["outcome"] == "NOT_DISCLOSED"

    remaining = client.get("/api/reviews", headers=officer).json()
    assert remaining["total"] == len(queue) - 2
    # the requester gets the address released after its response, with the ledger entry
    released = client.get("/api/batches/1/releases", headers=service.auth("requester")).json()[
        "releases"
    ]
    assert [r["request_id"] for r in released] == [first["request_id"]]
    assert (
        released[0]["address_street"]
        and released[0]["ledger_index"] == done.json()["disclosure_index"]
    )
    # the auditor's accounting for the taxpayer shows it; the ledger and the store agree
    lines = client.post(
        "/api/accounting", json={"tin": first["matched_tin"]}, headers=service.auth("auditor")
    ).json()["requests"]
    assert any(line["disclosed_item"] == "last_known_address" for line in lines)
    # as it stands now: the disclosed review is DISCLOSED in the accounting, not REVIEW
    mine = [line for line in lines if line["request_id"] == first["request_id"]]
    assert [line["outcome"] for line in mine] == ["DISCLOSED"] and mine[0][
        "practice"
    ] == "26 U.S.C. § 6103(i)(2)"
    assert (
        mine[0]["disclosure_ledger_index"] == done.json()["disclosure_index"] and mine[0]["statute"]
    )
    with service.store.session() as session:
        reviews = session.execute(select(Review)).scalars().all()
        entry = json.loads(Ledger(service.store).entry(session, reviews[0].ledger_index))
    assert (
        entry["kind"] == "review"
        and entry["officer"] == "officer"
        and entry["action"] == "disclose"
    )
    assert findings(service.store) == []


def test_an_edited_review_note_fails_verification(service, small_batch):
    queue = decided(service, small_batch)
    service.client.post(
        "/api/reviews",
        headers=service.auth("officer"),
        json={
            "decision": queue[0]["decision"],
            "action": "decline",
            "note": "Names differ: not this taxpayer.",
        },
    )
    with service.store.session.begin() as session:
        session.execute(Review.__table__.update().values(note="Names agree."))
    found = findings(service.store)
    assert (
        len(found) == 1 and "(review) and reviews row" in found[0] and "note_sha256 is" in found[0]
    ), found


def test_a_stay_holds_a_reviewed_disclosure_until_lifted(service, small_batch):
    client, officer = service.client, service.auth("officer")
    queue = decided(service, small_batch)
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
    with service.store.session() as session:
        disclosed_before = session.execute(select(Disclosure.decision_id)).scalars().all()
    held = client.post(
        "/api/reviews",
        headers=officer,
        json={
            "decision": queue[0]["decision"],
            "action": "disclose",
            "note": "Same person: the street is misspelled.",
        },
    )
    assert held.json()["outcome"] == "HELD" and held.json()["held_by"] == stay["id"]
    with service.store.session() as session:  # held: nothing has left yet
        assert session.execute(select(Disclosure.decision_id)).scalars().all() == disclosed_before
    assert (
        client.get("/api/batches/1/releases", headers=service.auth("requester")).json()["releases"]
        == []
    )
    lifted = client.post(f"/api/orders/{stay['id']}/lift", headers=officer, json=LIFT).json()
    assert lifted["released"] == 1 and lifted["order"]["lifted"]
    assert (
        len(
            client.get("/api/batches/1/releases", headers=service.auth("requester")).json()[
                "releases"
            ]
        )
        == 1
    )
    assert (
        client.post(f"/api/orders/{stay['id']}/lift", headers=officer, json=LIFT).status_code == 409
    )
    with service.store.session() as session:
        assert (
            session.execute(
                select(func.count(HeldItem.id)).where(HeldItem.released_at.is_(None))
            ).scalar_one()
            == 0
        )
        # the lift released exactly the reviewed request's item, once
        after = session.execute(select(Disclosure.decision_id)).scalars().all()
        assert sorted(after) == sorted([*disclosed_before, queue[0]["decision"]])


def test_a_bad_order_is_422_with_the_reason(service):
    answer = service.client.post(
        "/api/orders", headers=service.auth("officer"), json={"kind": "ban"}
    )
    assert answer.status_code == 422 and "kind" in answer.json()["detail"]


def test_an_auditor_proves_an_entry_against_the_checkpoint(service, small_batch):
    service.submit(small_batch)
    service.run_queued()
    auditor = service.auth("auditor")
    head = service.client.get("/api/ledger/checkpoint", headers=service.auth("requester")).json()
    assert head["ledger_size"] > 300 and head["checkpoint"].startswith("taxgate.example/ledger\n")
    with service.store.session() as session:  # the first decision's entry (the users' come first)
        index = session.execute(select(func.min(DecisionRecord.ledger_index))).scalar_one()
    proof = service.client.get(f"/api/ledger/proof/{index}", headers=auditor).json()
    trusted = check_proof(proof, head["verifier_key"])
    assert trusted.size == proof["size"] and json.loads(proof["entry"])["kind"] == "decision"
    assert service.client.get(f"/api/ledger/proof/{10**9}", headers=auditor).status_code == 404
    assert (
        service.client.post("/api/accounting", json={"tin": "12-34"}, headers=auditor).status_code
        == 422
    )


def test_an_interrupted_submission_is_queued_again_and_resumes(service, small_batch):
    from taxgate.service import jobs

    service.submit(small_batch)
    claimed = jobs.claim(service.store, "worker-a", lease_seconds=0.2)
    assert (
        claimed is not None and jobs.claim(service.store, "worker-b") is None
    )  # one worker gets it
    time.sleep(0.3)  # worker-a died: its lease lapses, and another worker takes the submission
    assert service.run_queued() == 1
    assert (
        service.client.get("/api/batches/1", headers=service.auth("requester")).json()["status"]
        == "done"
    )


def test_the_timer_releases_and_signs(service, small_batch):
    from taxgate.service import jobs

    queue = decided(service, small_batch)
    review = service.client.post(
        "/api/reviews",
        headers=service.auth("officer"),
        json={
            "decision": queue[0]["decision"],
            "action": "decline",
            "note": "Names differ: not this taxpayer.",
        },
    ).json()
    with service.store.session() as session:  # a review is signed at once: it stops a second one
        assert (
            int(Ledger(service.store).latest_checkpoint(session).split("\n")[1])
            > review["ledger_index"]
        )
    assert (
        jobs.run_timer_round(service.store, service.settings)["signed"] is False
    )  # nothing new: nothing to sign
    with service.store.session.begin() as session:
        Ledger(service.store).append(
            session, [{"kind": "test", "n": 1}]
        )  # something the timer must sign
    assert jobs.run_timer_round(service.store, service.settings)["signed"] is True


def test_one_content_policy_a_bad_row_is_its_row_in_the_service_as_on_the_command_line(
    service, small_batch, tmp_path
):
    """Invalid UTF-8 and a NUL in the first 64 KiB: the upload is taken, and those rows are
    MALFORMED_ROW in the response, exactly as `taxgate process` answers the same file."""
    from taxgate.pipeline import process

    manifest = json.loads(small_batch.read_text())
    lines = (small_batch.parent / manifest["requests"]).read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b",", b"\xff\xfe,", 1)
    lines[4] = lines[4].replace(b",", b"\x00,", 1)
    rows = b"".join(lines[:40])
    answer = service.submit(small_batch, rows=rows)
    assert answer.status_code == 202, answer.text
    service.run_queued()
    served = list(
        csv.DictReader(
            io.StringIO(
                service.client.get(
                    "/api/batches/1/response", headers=service.auth("requester")
                ).text
            )
        )
    )
    folder = tmp_path / "cli"
    folder.mkdir()
    (folder / manifest["requests"]).write_bytes(rows)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "batch_ref": "cli-copy"}))
    with control_store(tmp_path) as other:
        result = process(
            folder / "manifest.json", service.settings.master, folder / "out", store=other
        )
    assert result.malformed >= 2  # the two spoilt here, and any the generator damaged in these rows
    printed = list(csv.DictReader(io.StringIO((folder / "out" / "response.csv").read_text())))
    assert [
        (r["row_number"] if "row_number" in r else r["request_id"], r["outcome"], r["reasons"])
        for r in served
    ] == [
        (r["row_number"] if "row_number" in r else r["request_id"], r["outcome"], r["reasons"])
        for r in printed
    ]
    assert (
        served[1]["reasons"] == served[3]["reasons"] == "MALFORMED_ROW"
    )  # the two rows spoilt here
