"""Retroactive audit and incidents: a batch replayed as practised in 2025 and audited under the
statute lists exactly the disclosures the statute would not have made; an incident turns them into a
disposal request and taxpayer notices, tracked to completion and ledgered."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from taxgate.identify.master import taxpayer_records
from taxgate.ledger import Ledger
from taxgate.notices import add_order_with_notices, list_notices, mark_sent
from taxgate.notices.documents import write_notice
from taxgate.pipeline import process
from taxgate.remediation import (
    RemediationError,
    audit,
    certify_disposal,
    list_incidents,
    open_incident,
)
from taxgate.store.models import Batch, DecisionRecord, LedgerEntry
from taxgate.synth import Mix, generate_batch

from seeing import pdf_text, words_off_page
from support import STAY, assert_user_error, control_store, findings, taxgate

pytestmark = pytest.mark.slow  # replays and audits end to end


@pytest.fixture(scope="module")
def batch_2025(world, tmp_path_factory) -> dict[str, Path]:
    """The 2025 datafile's shape over the shared world, with a second manifest (its own batch_ref)
    for the replay, and a control run under the statute on its own store."""
    root = tmp_path_factory.mktemp("batch2025")
    manifest = generate_batch(
        world["master"], root / "batch", 1_500, seed=21, mix=Mix.datafile_2025()
    )
    raw = json.loads(manifest.read_text())
    replayed = manifest.with_name("manifest-2025.json")
    replayed.write_text(json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-2025"}))
    with control_store(root) as store:
        process(manifest, world["master"], root / "statute", store=store)
    statute = _csv(
        root / "statute" / "auditors" / "decisions.csv"
    )  # in row order (request ids may repeat: duplicates)
    return {"manifest": manifest, "replayed": replayed, "statute": statute, "root": root}


def _csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _ledger_size(store) -> int:
    with store.session() as session:
        return Ledger(store).size(session)


@pytest.fixture()
def audited(store, world, batch_2025, tmp_path):
    past = process(
        batch_2025["replayed"],
        world["master"],
        tmp_path / "replay",
        store=store,
        rule_set="as-practised-2025",
        replay=True,
    )
    result = audit(store, batch_2025["replayed"], world["master"], tmp_path / "audit")
    return past, result, tmp_path


def test_the_unlawful_rule_set_cannot_be_used_to_disclose(store, world, batch_2025, tmp_path):
    with pytest.raises(ValueError, match="not lawful"):
        process(
            batch_2025["replayed"],
            world["master"],
            tmp_path / "x",
            store=store,
            rule_set="as-practised-2025",
        )
    with pytest.raises(ValueError, match="unknown rule set"):
        process(
            batch_2025["replayed"], world["master"], tmp_path / "x", store=store, rule_set="lenient"
        )


def test_the_audit_lists_exactly_the_disclosures_the_statute_would_not_make(audited, batch_2025):
    past, result, tmp_path = audited
    replay, statute = (
        _csv(tmp_path / "replay" / "auditors" / "decisions.csv"),
        batch_2025["statute"],
    )
    disclosed_then = {
        i + 1 for i, r in enumerate(replay) if r["outcome"] == "DISCLOSED"
    }  # row numbers
    # The control: the same rows decided under the statute, independently, on another store.
    not_now = {n for n in disclosed_then if statute[n - 1]["outcome"] != "DISCLOSED"}
    listed = _csv(Path(result.findings_file))
    assert result.audited == len(disclosed_then) == past.outcomes["DISCLOSED"]
    assert {int(f["row_number"]) for f in listed} == not_now and result.not_made == len(not_now) > 0
    for f in listed:  # the reasons are the statute's own, and the category follows from them
        control = statute[int(f["row_number"]) - 1]
        assert f["request_id"] == control["request_id"]
        assert f["reasons_now"] == control["reasons"] and f["outcome_now"] == control["outcome"]
        if f["category"] == "address_not_set_forth":
            assert {"ADDRESS_MISSING", "ADDRESS_PLACEHOLDER", "ADDRESS_INCOMPLETE"} & set(
                f["reasons_now"].split(";")
            )
        assert ("ID_TIN_MATCH" in f["reasons_then"]) == (f["path"] == "tin")


def test_the_demo_shape_most_tin_path_disclosures_had_no_valid_address(audited, batch_2025):
    """The figures the court's finding is compared with, counted again here from the replay's own
    decisions and the statute's control: TIN-path disclosures, and those of them whose request
    set forth no valid address under the statute."""
    _, result, tmp_path = audited
    replay, statute = (
        _csv(tmp_path / "replay" / "auditors" / "decisions.csv"),
        batch_2025["statute"],
    )
    address_codes = {"ADDRESS_MISSING", "ADDRESS_PLACEHOLDER", "ADDRESS_INCOMPLETE"}
    tin_path = [
        n
        for n, r in enumerate(replay)
        if r["outcome"] == "DISCLOSED" and "ID_TIN_MATCH" in r["reasons"].split(";")
    ]
    without_address = [n for n in tin_path if address_codes & set(statute[n]["reasons"].split(";"))]
    shape = result.shape
    assert shape["tin_path_disclosed"] == len(tin_path) > 20
    assert shape["tin_path_without_valid_address"] == len(without_address)
    assert shape["share"] == round(len(without_address) / len(tin_path), 4)
    assert shape["share"] > 0.6  # the shape of the court's finding: about 42,695 of 47,289 (90%)
    assert shape["tin_path_without_valid_address"] == result.by_path["tin"]["address_not_set_forth"]


def test_an_audit_is_ledgered_once_and_verifies(audited, store, world, batch_2025, tmp_path):
    _, first, _ = audited
    size = _ledger_size(store)
    again = audit(store, batch_2025["replayed"], world["master"], tmp_path / "again")
    assert again.existing and again.audit_id == first.audit_id and _ledger_size(store) == size
    with store.session() as session:
        entry = json.loads(session.get(LedgerEntry, first.ledger_index).entry)
    assert entry["kind"] == "audit" and entry["not_made"] == first.not_made
    assert entry["by_path"] == first.by_path
    assert findings(store) == []


def test_an_audit_of_rows_that_were_never_recorded_is_refused(store, world, batch_2025, tmp_path):
    with pytest.raises(RemediationError, match="never recorded"):
        audit(store, batch_2025["replayed"], world["master"], tmp_path / "audit")


def test_an_incident_owes_a_disposal_request_and_one_notice_per_taxpayer_until_done(audited, store):
    _, result, tmp_path = audited
    listed = _csv(Path(result.findings_file))
    status = open_incident(store, result.audit_id)
    taxpayers = {f["tin"] for f in listed}
    assert status.notices == 1 + len(taxpayers) and status.notices_sent == 0
    with pytest.raises(RemediationError, match="already has an incident"):
        open_incident(store, result.audit_id)
    notices = list_notices(store, incident_id=status.id)
    (disposal,) = [n for n in notices if n.kind == "disposal_request"]
    assert {d["request_id"] for d in disposal.body["disclosures"]} == {
        f["request_id"] for f in listed
    }
    taxpayer = next(n for n in notices if n.kind == "taxpayer")
    tin_findings = [f for f in listed if f["tin"].endswith(taxpayer.body["tin_last4"])]
    assert taxpayer.body["disclosures"][0]["date"] and "7431" in " ".join(taxpayer.body["rights"])
    assert {d["ledger_index"] for d in taxpayer.body["disclosures"]} <= {
        int(f["disclosure_ledger_index"]) for f in tin_findings
    }

    # Every notice sent, but disposal not certified: still open. Then certified: closed, once.
    mark_sent(store, [n.id for n in notices])
    assert list_incidents(store)[0].closed_at is None
    closed = certify_disposal(store, status.id, "Casey Morgan, Director")
    assert closed.closed_at is not None and closed.notices_sent == closed.notices
    with pytest.raises(RemediationError, match="was certified"):
        certify_disposal(store, status.id, "someone else")
    with store.session() as session:
        kinds = [json.loads(e)["kind"] for (e,) in session.execute(select(LedgerEntry.entry))]
    assert (
        kinds.count("incident_opened")
        == kinds.count("disposal_certified")
        == kinds.count("incident_closed")
        == 1
    )
    assert kinds.count("notice_sent") == len(notices)
    assert findings(store) == []


def test_the_taxpayer_notice_is_a_letter_to_the_taxpayer(audited, store, world, tmp_path):
    _, result, _ = audited
    status = open_incident(store, result.audit_id, master_path=world["master"])
    taxpayer = next(n for n in list_notices(store, incident_id=status.id) if n.kind == "taxpayer")
    record = taxpayer_records(world["master"], [taxpayer.tin])[taxpayer.tin][
        0
    ]  # the latest tax year
    html, pdf = write_notice(taxpayer, tmp_path / "notices")
    text, printed = html.read_text(), pdf_text(pdf)
    name = " ".join(
        record[k] for k in ("first_name", "middle_name", "last_name", "suffix") if record[k]
    )
    assert (
        taxpayer.body["name"] == name
        and name in printed
        and taxpayer.body["mail_to"]["street"] in printed
    )
    assert (
        printed.index("Mail to")
        < printed.index(name)
        < printed.index(taxpayer.body["mail_to"]["street"])
    )
    # dated on the day the replayed practice disclosed it (the batch's date), not the day of the replay
    with store.session() as session:
        dated = session.execute(
            select(Batch.as_of).where(Batch.batch_ref.like("%-2025"))
        ).scalar_one()
    assert {d["date"] for d in taxpayer.body["disclosures"]} == {dated}
    assert date.fromisoformat(dated).strftime("%B %-d, %Y") in printed
    assert "26 U.S.C. § 7431" in printed and f"Notice {taxpayer.id}" in printed
    # nothing of the gateway's own: no notice kind, due time, ledger entry or command
    for internal in (
        "taxpayer)",
        "Due",
        "ledger",
        "Ledger",
        "taxgate",
        "entry",
        str(taxpayer.due_at.year) + "-",
    ):
        assert internal not in printed, internal
    assert "<script" not in text and "http" not in text.split("</head>")[0].replace(
        "http-equiv", ""
    )
    assert words_off_page(pdf) == []


def test_a_use_bar_is_noticed_to_the_recipient_with_what_it_received(audited, store):
    past, _, _ = audited
    order = add_order_with_notices(
        store, {**STAY, "kind": "use_bar", "court": "D. Mass.", "docket": "1:26-cv-10001"}
    )
    (notice,) = [n for n in list_notices(store) if n.kind == "use_bar"]
    assert notice.order_id == order.id and notice.recipient == "DHS-ICE"
    assert notice.body["disclosures_received"] == past.outcomes["DISCLOSED"]


def test_the_command_line_replays_audits_and_opens_an_incident(world, batch_2025, tmp_path):
    replay = taxgate(
        "replay",
        str(batch_2025["replayed"]),
        "--master",
        str(world["master"]),
        "--out",
        str(tmp_path / "r"),
    )
    assert replay.returncode == 0 and "not a lawful disclosure path" in replay.stderr
    done = taxgate(
        "audit",
        str(batch_2025["replayed"]),
        "--master",
        str(world["master"]),
        "--out",
        str(tmp_path / "a"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # what it says it found is what it wrote, one row a disclosure, none of them empty
    listed = _csv(Path(result["findings_file"]))
    assert result["not_made"] == len(listed) > 0
    assert all(f["request_id"] and f["reasons_now"] and f["category"] for f in listed)
    assert taxgate("incidents", "open", str(result["audit_id"])).returncode == 0
    assert_user_error(
        taxgate("incidents", "open", str(result["audit_id"])), "already has an incident"
    )
    assert_user_error(
        taxgate("audit", str(batch_2025["manifest"]), "--master", str(world["master"])),
        "never recorded",
    )
    rendered = taxgate("notices", "render", "--incident", "1", "--out", str(tmp_path / "n"))
    assert rendered.returncode == 0 and len(list((tmp_path / "n").glob("notice-*.pdf"))) > 1
    sent = taxgate("notices", "sent", "--incident", "1", "--kind", "taxpayer")
    assert sent.returncode == 0
    listed = [
        json.loads(line) for line in taxgate("incidents", "list", "--json").stdout.splitlines()
    ]
    assert listed[0]["notices_sent"] == listed[0]["notices"] - 1 and listed[0]["closed_at"] is None


def _key() -> str:
    import os

    return Path(os.environ["TAXGATE_LEDGER_KEY"]).with_suffix(".pub").read_text().strip()


def test_an_audit_finding_edited_or_deleted_by_sql_is_a_finding(audited, store):
    """The audit's entry commits to its list of findings; the incident's, to how many it names."""
    from sqlalchemy import text

    past, result, _ = audited
    open_incident(store, result.audit_id)
    assert findings(store) == []
    with store.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM audit_findings WHERE id = (SELECT min(id) FROM audit_findings)")
        )
        connection.execute(text("UPDATE incidents SET disposal_certified_by = 'nobody'"))
        connection.execute(
            text(
                "UPDATE audits SET run_at = '2020-01-01 00:00:00', "
                'summary = \'{"at":"2020-01-01T00:00:00+00:00",\' || substr(summary, 2)'
            )
        )
    found = findings(store)
    assert any("(audit) and audits row" in f and "findings_sha256 is" in f for f in found), found
    assert any("(audit) and audits row" in f and "at is" in f for f in found), (
        found
    )  # the columns win
    assert any(
        "(incident_opened) and incidents row" in f and "disclosures is" in f for f in found
    ), found
    assert any(
        "records a 'disposal_certified' event that no ledger entry records" in f for f in found
    ), found


def test_a_replay_is_never_reviewed_or_released_now(audited, store, world):
    """A replay of the 2025 practice is a record of what was done: its requests near the line are
    not in any officer's queue, and deciding one is refused (an officer's 'disclose' would release
    an address today under a practice held unlawful)."""
    from taxgate.review import ReviewError, decide_review, review_queue

    with store.session() as session:
        replayed = (
            session.execute(
                select(DecisionRecord.id)
                .join(Batch, Batch.id == DecisionRecord.batch_id)
                .where(
                    Batch.rule_set_version == "as-practised-2025",
                    DecisionRecord.outcome == "REVIEW",
                )
            )
            .scalars()
            .all()
        )
    assert replayed, "the replay should hold requests near the line"
    assert not set(replayed) & {r["decision"] for r in review_queue(store, limit=10_000)[1]}
    with pytest.raises(ReviewError, match="replay of past practice"):
        decide_review(
            store,
            replayed[0],
            "officer",
            "disclose",
            "Same person, by the street.",
            world["master"],
        )


def test_a_replayed_case_is_closed_to_officers(audited, store, world):
    from taxgate.review import ReviewError, review_case

    with store.session() as session:
        replayed = (
            session.execute(
                select(DecisionRecord.id)
                .join(Batch, Batch.id == DecisionRecord.batch_id)
                .where(
                    Batch.rule_set_version == "as-practised-2025",
                    DecisionRecord.outcome == "REVIEW",
                )
            )
            .scalars()
            .first()
        )
    with pytest.raises(ReviewError, match="replay of past practice"):
        review_case(store, replayed, world["master"])
    assert (
        review_case(store, replayed, world["master"], open_only=False)["decision"] == replayed
    )  # an auditor reads it
