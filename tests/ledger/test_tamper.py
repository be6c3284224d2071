"""The ledger is the truth: someone with write access to the store changes it by plain SQL, as an
operator could, and `taxgate ledger verify` names every change (one line each, exit 1, never a
traceback), while the paths that release anything refuse to act on what the ledger does not say.

The store under attack is built once per module (a batch disclosed, a stay holding a second batch,
an officer's review held by the stay, a notice sent) and copied for each test, on the database the
suite runs on (SQLite, or PostgreSQL in CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from taxgate.ledger import TamperedError, sign_checkpoint
from taxgate.notices import add_order_with_notices, list_notices, mark_sent
from taxgate.pipeline import process
from taxgate.release import release_held
from taxgate.review import decide_review, review_queue
from taxgate.store import open_store
from taxgate.store.models import Disclosure

from support import (
    SERVER,
    STAY,
    Threaded,
    findings,
    server_database,
    signing_key,
    taxgate,
    verifier_key,
)

pytestmark = pytest.mark.slow  # large ledgers tampered with and verified

NOTICE_ON_RECEIPT = {
    "kind": "notice_on_receipt",
    "court": "D.D.C.",
    "docket": "1:25-cv-00457",
    "effective_from": "2025-01-01",
    "hours": 24,
    "scope": {"agency": "DHS-ICE"},
    "notify": ["court"],
}


@pytest.fixture(scope="module")
def template(world, small_batch, tmp_path_factory):
    """The store under attack, once: its URL (a file or a PostgreSQL database) and its key folder."""
    root = tmp_path_factory.mktemp("tamper")
    with contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(server_database()) if SERVER else f"sqlite:///{root / 'taxgate.db'}"
        )
        with signing_key(root / "ledger.key"):
            store = open_store(url)
            process(world["manifest"], world["master"], root / "a", store=store)
            add_order_with_notices(store, STAY)
            add_order_with_notices(store, NOTICE_ON_RECEIPT)
            process(small_batch, world["master"], root / "b", store=store)
            _, waiting = review_queue(store)
            decide_review(
                store,
                waiting[0]["decision"],
                "officer",
                "disclose",
                "the same person, checked by hand",
                world["master"],
            )
            mark_sent(store, [n.id for n in list_notices(store, kind="court_receipt")])
            sign_checkpoint(store)
            assert findings(store) == []
            store.close()
        yield url, root


@pytest.fixture()
def attacked(template, tmp_path, monkeypatch):
    """A copy of the store under attack, with a copy of its key and the signer's record."""
    url, root = template
    for name in ("ledger.key", "ledger.pub", "ledger.last"):
        shutil.copy(root / name, tmp_path / name)
    monkeypatch.setenv("TAXGATE_LEDGER_KEY", str(tmp_path / "ledger.key"))
    with contextlib.ExitStack() as stack:
        if SERVER:
            copy = stack.enter_context(server_database(template=url))
        else:
            shutil.copy(root / "taxgate.db", tmp_path / "attacked.db")
            copy = f"sqlite:///{tmp_path / 'attacked.db'}"
        monkeypatch.setenv("TAXGATE_DATABASE_URL", copy)
        store = open_store(copy)
        yield store
        store.close()


def sql(store, *statements: str) -> None:
    """Plain SQL on the store; `{victim}` is a disclosed decision that nothing else refers to."""
    with store.engine.begin() as connection:
        victim = connection.execute(text(VICTIM)).scalar_one()
        for statement in statements:
            if callable(
                statement
            ):  # a tamper that needs a hash computed: still plain SQL underneath
                statement(connection)
            else:
                connection.execute(text(statement.replace("{victim}", str(victim))))


def one(store, query: str):
    with store.engine.connect() as connection:
        return connection.execute(text(query)).scalar_one()


def assert_found(store, *fragments: str) -> list[str]:
    found = findings(store)
    assert found, "verify found nothing"
    for fragment in fragments:
        assert any(fragment in line for line in found), (fragment, found[:5])
    assert all("\n" not in line for line in found)
    return found


# A disclosure whose decision nothing else refers to (no review, no held item).
VICTIM = (
    "SELECT min(x.decision_id) FROM disclosures x WHERE NOT EXISTS "
    "(SELECT 1 FROM reviews r WHERE r.decision_id = x.decision_id)"
)

TAMPERS = {
    "one taxpayer's decision and disclosure deleted": (
        [
            "DELETE FROM disclosures WHERE decision_id = {victim}",
            "DELETE FROM decisions WHERE id = {victim}",
        ],
        [
            "(disclosure) has no row in disclosures",
            "(decision) has no row in decisions",
            "(batch_completed)",
        ],
    ),
    "a review deleted": (["DELETE FROM reviews"], ["(review) has no row in reviews"]),
    "a stay's end moved in its table": (
        ["UPDATE orders SET effective_to = '2025-12-01' WHERE kind = 'stay'"],
        ["orders row", "effective_to column(s) differ from the order"],
    ),
    "a stay deleted": (
        ["DELETE FROM orders WHERE kind = 'stay'"],
        ["(order_added) has no row in orders"],
    ),
    "the address a held item will release": (
        [
            'UPDATE held_items SET value = replace(value, \'"street":"\', \'"street":"9 \') '
            "WHERE id = (SELECT min(id) FROM held_items)"
        ],
        ["held_items row", "value_sha256"],
    ),
    "a notice's sending time": (
        ["UPDATE notices SET sent_at = due_at WHERE sent_at IS NOT NULL"],
        ["(notice_sent) and notices row"],
    ),
    "a notice sent that never was": (
        ["UPDATE notices SET sent_index = NULL WHERE sent_at IS NOT NULL"],
        ["(notice_sent) has no row in notices", "that no ledger entry records"],
    ),
    "when an address left": (
        [
            "UPDATE disclosures SET disclosed_at = '2025-08-07 12:00:00' "
            "WHERE id = (SELECT min(id) FROM disclosures)"
        ],
        ["(disclosure) and disclosures row", "'2025-08-07T12:00:00+00:00' in the table"],
    ),
    "the TIN a request gave": (
        [
            "UPDATE decisions SET requested_tin = '900000001' "
            "WHERE id = (SELECT min(id) FROM decisions)"
        ],
        ["requested_tin is"],
    ),
    "the evidence an officer reads": (
        [
            "UPDATE decisions SET evidence = replace(evidence, 'statute', 'statue') "
            "WHERE evidence IS NOT NULL"
        ],
        ["evidence_sha256 is"],
    ),
    "a batch's as-of date": (
        ["UPDATE batches SET as_of = '2026-11-30'"],
        ["(batch_received) and batches row", "as_of is"],
    ),
    "two decisions swapped": (
        [
            "UPDATE decisions SET ledger_index = -ledger_index - 1 WHERE id IN (1, 2)",
            "UPDATE decisions SET ledger_index = -ledger_index - 1 + 1 WHERE id = 1",
            "UPDATE decisions SET ledger_index = -ledger_index - 1 - 1 WHERE id = 2",
        ],
        ["decisions row 1", "decisions row 2"],
    ),
    "a disclosure row with no entry": (
        [
            "INSERT INTO disclosures (decision_id, tin, item, value, disclosed_at, ledger_index) "
            "SELECT id, matched_tin, 'last_known_address', '{}', CURRENT_TIMESTAMP, 10000000 FROM decisions "
            "WHERE outcome = 'NOT_DISCLOSED' AND id = (SELECT min(id) FROM decisions WHERE outcome = 'NOT_DISCLOSED')"
        ],
        ["names ledger entry 10000000"],
    ),
    "a stay's entry rewritten with its leaf hash": (
        [
            lambda c: rewrite_entry(
                c,
                "order_added",
                lambda e: {**e, "order": {**e["order"], "effective_to": "2025-11-30"}},
            ),
            lambda c: c.exec_driver_sql(
                "UPDATE orders SET effective_to = '2025-11-30', body = replace(body, "
                "'\"effective_to\":null', '\"effective_to\":\"2025-11-30\"') WHERE kind = 'stay'"
            ),
        ],
        ["do not match the checkpoint stored at size"],
    ),
    "a lift forged past the ledger's end": ([lambda c: forge_lift(c)], ["past the ledger's end"]),
    "an order row's columns unlike its order": (
        ["UPDATE orders SET court = 'D. Mass.' WHERE kind = 'stay'"],
        ["court column(s) differ from the order"],
    ),
    "two orders' ids swapped": (
        [
            "UPDATE notices SET order_id = NULL",
            "UPDATE orders SET id = id + 100",
            "UPDATE orders SET id = CASE id WHEN 101 THEN 2 ELSE 1 END",
        ],
        ["id is 1 in the ledger"],
    ),
    "an empty reason added": (
        [
            "UPDATE decisions SET reasons = reasons || ';' WHERE id = (SELECT min(id) FROM decisions)"
        ],
        ["reasons is"],
    ),
    "a weight moved in its fourth decimal": (
        [
            "UPDATE decisions SET match_weight = match_weight + 0.0004 WHERE id = "
            "(SELECT min(id) FROM decisions WHERE match_weight IS NOT NULL)"
        ],
        ["weight is"],
    ),
    "a finished batch's mark moved back": (
        ["UPDATE batches SET committed_rows = 150 WHERE id = 1"],
        ["its mark says 150 rows recorded"],
    ),
    "a tile with a hash too many": (
        [
            "UPDATE ledger_tiles SET hashes = CAST(hashes || substr(hashes, 1, 32) AS BLOB) "
            "WHERE level = 1 AND n = 0"
            if not SERVER
            else "UPDATE ledger_tiles SET hashes = hashes || substring(hashes from 1 for 32) "
            "WHERE level = 1 AND n = 0"
        ],
        ["ledger_tiles row 1/0: holds"],
    ),
    "an order's text nested 50,000 deep": (
        ["UPDATE orders SET body = '" + "[" * 50_000 + "' WHERE kind = 'stay'"],
        ["orders row", "cannot make an entry"],
    ),
    "a moment out of range": (
        [
            "UPDATE disclosures SET disclosed_at = '9999-12-31 23:59:59-23:59' WHERE id = "
            "(SELECT min(id) FROM disclosures)"
            if not SERVER
            else "UPDATE disclosures SET disclosed_at = 'infinity' WHERE id = (SELECT min(id) FROM disclosures)"
        ],
        ["disclosures row"],
    ),
}
if (
    not SERVER
):  # SQLite only: it stores what it is given, bytes that are no UTF-8 and rows whose parent is gone
    TAMPERS["text that is not UTF-8"] = (
        ["UPDATE decisions SET official = CAST(x'ff' AS TEXT) WHERE id = 1"],
        ["decisions row 1 (batch 1, row 1"],
    )


def rewrite_entry(connection, kind: str, change) -> None:
    """An entry rewritten with its leaf hash and its level-0 tile, as someone covering their tracks would."""
    import json

    from taxgate.ledger import merkle
    from taxgate.ledger.log import canonical

    idx, blob = next(
        (i, bytes(e))
        for i, e in connection.execute(text("SELECT idx, entry FROM ledger_entries ORDER BY idx"))
        if json.loads(bytes(e))["kind"] == kind
    )
    forged = canonical(change(json.loads(blob)))
    leaf = merkle.leaf_hash(forged)
    connection.execute(
        text("UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE idx = :i"),
        {"e": forged, "h": leaf, "i": idx},
    )
    tile = bytes(
        connection.execute(
            text("SELECT hashes FROM ledger_tiles WHERE level = 0 AND n = :n"), {"n": idx // 256}
        ).scalar_one()
    )
    at = (idx % 256) * 32
    connection.execute(
        text("UPDATE ledger_tiles SET hashes = :t WHERE level = 0 AND n = :n"),
        {"t": tile[:at] + leaf + tile[at + 32 :], "n": idx // 256},
    )


def forge_lift(connection) -> None:
    """A lift of the stay forged far past the ledger's end, and the stay's row pointed at it."""
    from taxgate.ledger import merkle
    from taxgate.ledger.log import canonical

    order_id, index = connection.execute(
        text("SELECT id, ledger_index FROM orders WHERE kind = 'stay'")
    ).one()
    entry = canonical(
        {
            "kind": "order_lifted",
            "order_id": order_id,
            "order_entry": index,
            "at": "2026-01-01T00:00:00+00:00",
        }
    )
    connection.execute(
        text("INSERT INTO ledger_entries (idx, entry, leaf_hash) VALUES (1000000, :e, :h)"),
        {"e": entry, "h": merkle.leaf_hash(entry)},
    )
    connection.execute(
        text(
            "UPDATE orders SET lifted_index = 1000000, lifted_at = '2026-01-01 00:00:00' "
            "WHERE kind = 'stay'"
        )
    )


@pytest.mark.parametrize("tamper", list(TAMPERS), ids=list(TAMPERS))
def test_every_tamper_by_plain_sql_is_a_finding(attacked, tamper):
    statements, fragments = TAMPERS[tamper]
    sql(attacked, *statements)
    assert_found(attacked, *fragments)


@pytest.mark.skipif(bool(SERVER), reason="SQLite only: it stores bytes that are no UTF-8 as text")
@pytest.mark.parametrize("chunk", [7, 50_000])
def test_text_that_is_not_utf8_midway_is_one_finding_and_every_other_row_still_checked(
    attacked, chunk
):
    """The walk reads with SQLite's own decoder and, on text that is not UTF-8, reads that table
    again with a lenient one from where it stood: the altered row is the only finding (a row
    skipped or read twice would be findings of its own), whether it lies in the first chunk or past
    several."""
    from taxgate.verification import verify_store

    middle = one(
        attacked,
        "SELECT id FROM decisions ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM decisions)",
    )
    sql(attacked, f"UPDATE decisions SET official = CAST(x'4f66ff' AS TEXT) WHERE id = {middle}")
    found = [f.message for f in verify_store(attacked, verifier_key(), chunk=chunk, workers=1)]
    assert len(found) == 1 and f"decisions row {middle} " in found[0], found[:5]


RETYPES = {
    "an entry stored as text": (
        "UPDATE ledger_entries SET entry = CAST(entry AS TEXT) WHERE idx = 3",
        "ALTER TABLE ledger_entries ALTER COLUMN entry TYPE text USING encode(entry, 'escape')",
        "the entry is stored as str",
    ),
    "the ledger's size as text": (
        "UPDATE ledger_head SET size = 'many'",
        "ALTER TABLE ledger_head ALTER COLUMN size TYPE text",
        "ledger_head row 1",
    ),
    "a match weight as text": (
        "UPDATE decisions SET match_weight = 'heavy' WHERE id = "
        "(SELECT min(id) FROM decisions WHERE match_weight IS NOT NULL)",
        "ALTER TABLE decisions ALTER COLUMN match_weight TYPE text",
        "match_weight is stored as str",
    ),
    "a released value as bytes": (
        "UPDATE disclosures SET value = CAST(value AS BLOB) WHERE id = "
        "(SELECT min(id) FROM disclosures)",
        "ALTER TABLE disclosures ALTER COLUMN value TYPE bytea USING convert_to(value, 'UTF8')",
        "value is stored as bytes",
    ),
}


@pytest.mark.parametrize("retype", list(RETYPES), ids=list(RETYPES))
def test_a_value_of_the_wrong_type_is_a_finding_not_a_crash(attacked, retype):
    on_sqlite, on_postgres, fragment = RETYPES[retype]
    sql(attacked, on_postgres if SERVER else on_sqlite)
    assert_found(attacked, fragment)


@pytest.mark.skipif(
    bool(SERVER), reason="PostgreSQL enforces foreign keys; SQLite lets them be switched off"
)
def test_a_row_whose_parent_is_gone_is_a_finding(attacked):
    import sqlite3

    raw = sqlite3.connect(
        attacked.engine.url.database
    )  # foreign keys off: as any sqlite3 shell opens it
    raw.execute("UPDATE reviews SET decision_id = 999999")
    raw.execute(
        "UPDATE disclosures SET decision_id = 999998 WHERE id = (SELECT min(id) FROM disclosures)"
    )
    raw.commit()
    raw.close()
    assert_found(attacked, "reviews row 1", "batch_id is stored as NoneType", "disclosures row")


def test_the_command_line_prints_one_line_per_finding_and_exits_1(attacked):
    sql(attacked, *TAMPERS["one taxpayer's decision and disclosure deleted"][0])
    run = taxgate("ledger", "verify")
    assert run.returncode == 1 and "Traceback" not in run.stdout + run.stderr, run
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) >= 3 and all(line.startswith("taxgate: ") for line in lines), lines
    assert "FAILED verification" in lines[-1]


@pytest.mark.parametrize(
    "tamper",
    [
        "a stay's end moved in its table",
        "a stay deleted",
        "the address a held item will release",
        "a stay's entry rewritten with its leaf hash",
        "a lift forged past the ledger's end",
        "an order row's columns unlike its order",
    ],
)
def test_an_order_or_held_item_edited_in_its_table_releases_nothing(attacked, tamper):
    before = one(attacked, "SELECT count(*) FROM disclosures")
    sql(attacked, *TAMPERS[tamper][0])
    with pytest.raises(TamperedError):
        release_held(attacked)
    assert one(attacked, "SELECT count(*) FROM disclosures") == before
    run = taxgate("orders", "release", "--out", Path(os.environ["TAXGATE_LEDGER_KEY"]).parent)
    assert (
        run.returncode == 1
        and "Traceback" not in run.stderr
        and "disagrees with its ledger" in run.stderr
    ), run
    assert one(attacked, "SELECT count(*) FROM disclosures") == before


def test_without_tampering_lifting_the_stay_releases_what_it_held(attacked):
    """The control for the test above: the same store, untouched, releases once the stay is lifted."""
    from taxgate.orders import lift_order, list_orders

    held = one(attacked, "SELECT count(*) FROM held_items WHERE released_at IS NULL")
    lift_order(
        attacked,
        next(o.id for o in list_orders(attacked) if o.kind == "stay"),
        by="officer",
        authority="Order of 2026-03-01, ECF 42",
        reason="The court lifted the stay.",
    )
    assert len(release_held(attacked)) == held > 0
    assert findings(attacked) == []


def test_a_batch_whose_as_of_date_was_edited_is_not_resumed(attacked, world):
    sql(attacked, "UPDATE batches SET as_of = '2026-11-30', status = 'processing' WHERE id = 1")
    with pytest.raises(TamperedError, match="as_of"):
        process(
            world["manifest"],
            world["master"],
            Path(os.environ["TAXGATE_LEDGER_KEY"]).parent / "again",
            store=attacked,
        )


def test_a_deleted_review_does_not_put_the_request_back_in_the_queue(attacked, world):
    decision = one(attacked, "SELECT decision_id FROM reviews")
    sql(attacked, "DELETE FROM reviews")
    with pytest.raises(TamperedError, match="records a review of this request"):
        decide_review(
            attacked,
            decision,
            "officer2",
            "disclose",
            "a second look, the first is gone",
            world["master"],
        )


# -- a forged history ---------------------------------------------------------------------------


def forge_history(store) -> None:
    """What an operator with the database could do: cut the checkpoints, rewrite one disclosed
    decision as NOT_DISCLOSED, drop its disclosure, and rebuild the whole log from the edited
    entries so that every tile, leaf hash and row agrees with the forgery."""
    import json

    from taxgate.ledger import Ledger

    with store.engine.connect() as connection:
        victim = connection.execute(text(VICTIM)).scalar_one()
        dropped = connection.execute(
            text(f"SELECT ledger_index FROM disclosures WHERE decision_id = {victim}")
        ).scalar_one()
        decision_index = connection.execute(
            text(f"SELECT ledger_index FROM decisions WHERE id = {victim}")
        ).scalar_one()
        entries = [
            (i, json.loads(bytes(e)))
            for i, e in connection.execute(
                text("SELECT idx, entry FROM ledger_entries ORDER BY idx")
            )
        ]
    kept = []
    for old, entry in entries:
        if old == dropped:
            continue
        if old == decision_index:
            entry = {
                **entry,
                "outcome": "NOT_DISCLOSED",
                "reasons": [*entry["reasons"][:-1], "ID_WEAK"],
            }
        if entry["kind"] == "batch_completed" and entry["batch"] == 1:
            outcomes = dict(entry["outcomes"])
            outcomes["DISCLOSED"] -= 1
            outcomes["NOT_DISCLOSED"] = outcomes.get("NOT_DISCLOSED", 0) + 1
            entry = {**entry, "outcomes": outcomes}
        kept.append((old, entry))

    def renumber(index: int) -> int:
        return index - 1 if index > dropped else index

    columns = [
        ("batches", "received_index"),
        ("batches", "completed_index"),
        ("decisions", "ledger_index"),
        ("disclosures", "ledger_index"),
        ("held_items", "ledger_index"),
        ("reviews", "ledger_index"),
        ("orders", "ledger_index"),
        ("orders", "lifted_index"),
        ("notices", "ledger_index"),
        ("notices", "sent_index"),
    ]
    ledger = Ledger(store)
    with store.session.begin() as session:
        session.execute(text(f"DELETE FROM disclosures WHERE decision_id = {victim}"))
        session.execute(
            text(
                f"UPDATE decisions SET outcome = 'NOT_DISCLOSED', reasons = "
                f"{'replace(reasons, ' + repr('ID_POSITIVE') + ', ' + repr('ID_WEAK') + ')'} WHERE id = {victim}"
            )
        )
        for table, column in columns:  # every index past the dropped entry shifts down by one
            session.execute(
                text(f"UPDATE {table} SET {column} = -{column} WHERE {column} > {dropped}")
            )
            session.execute(text(f"UPDATE {table} SET {column} = -{column} - 1 WHERE {column} < 0"))
        for entry_table in ("ledger_checkpoints", "ledger_tiles", "ledger_entries"):
            session.execute(text(f"DELETE FROM {entry_table}"))
        session.execute(text("UPDATE ledger_head SET size = 0"))
        forged = []
        for _, entry in kept:
            for key in ("order_entry", "notice_entry", "incident_entry"):
                if isinstance(entry.get(key), int):
                    entry[key] = renumber(entry[key])
            forged.append(entry)
        ledger.append(session, forged)  # re-encoded, hashed and tiled exactly as taxgate would


def test_a_forged_history_is_refused_by_a_witness(attacked, tmp_path):
    """A court monitor's witness cosigned the log before the forgery; the forged tree, even signed
    (the signer's record removed), gets no cosignature: its consistency proof does not verify."""
    from taxgate.ledger.signing import record_path
    from taxgate.witness import Cosigner, WitnessKey
    from taxgate.witness.client import Witness, cosign_latest
    from taxgate.witness.server import create_witness_app

    cosigner = Cosigner.generate("court-monitor.example/w1")
    app = create_witness_app(
        cosigner, {"taxgate.example/ledger": verifier_key()}, tmp_path / "witness.json"
    )
    with Threaded(app) as served:
        witness = Witness(served.url, WitnessKey.parse(cosigner.verifier_key()))
        assert "cosigned" in cosign_latest(attacked, [witness])[0]
        forge_history(attacked)
        record_path(tmp_path / "ledger.key").unlink()
        sign_checkpoint(attacked)  # the operator signs the forgery
        assert findings(attacked) == []  # nothing in the store tells
        said = cosign_latest(attacked, [witness])
    assert said and "REFUSED" in said[0] and "the log was cut back or replaced" in said[0], said
    # ...and padded back to its old length, the witness itself refuses it: no consistency proof.
    from taxgate.ledger import Ledger
    from taxgate.witness.client import cosigned_note

    with attacked.session.begin() as session:
        Ledger(attacked).append(session, [{"kind": "test", "padding": i} for i in range(5)])
    sign_checkpoint(attacked)
    with Threaded(app) as served:
        said = cosign_latest(attacked, [Witness(served.url, witness.key)])
    assert said and "REFUSED (422)" in said[0] and "does not extend" in said[0], said
    with attacked.session() as session:
        assert (
            cosigned_note(session, Ledger(attacked).latest_checkpoint(session)).count("\u2014 ")
            == 1
        )


def test_a_forged_history_is_caught_by_a_kept_checkpoint_and_by_the_signer(attacked, tmp_path):
    from taxgate.ledger import KeptCheckpoint, Ledger, LedgerError
    from taxgate.ledger.checkpoint import verify_note
    from taxgate.ledger.signing import record_path

    with attacked.session() as session:  # what a court monitor kept: the log's latest checkpoint
        kept_note = Ledger(attacked).latest_checkpoint(session)
    kept = KeptCheckpoint("court-monitor.txt", verify_note(kept_note, verifier_key()))
    disclosures = one(attacked, "SELECT count(*) FROM disclosures")
    forge_history(attacked)
    assert one(attacked, "SELECT count(*) FROM disclosures") == disclosures - 1

    # The defence: the signer's record refuses to sign a tree that does not extend what it signed.
    with pytest.raises(LedgerError, match="no longer holds the checkpoint this key signed last"):
        sign_checkpoint(attacked)
    run = taxgate("ledger", "checkpoint")
    assert run.returncode == 1 and "refused" in run.stderr and "Traceback" not in run.stderr, run
    # ...and the kept checkpoint: the forged log does not extend it.
    assert_found(attacked, "no signed checkpoint")
    with_kept = findings(attacked, [kept])
    assert any("the checkpoint kept in court-monitor.txt" in f for f in with_kept), with_kept[:3]

    # Remove both defences and the forgery passes: an operator signs it, and verify, with no
    # checkpoint kept outside the store, finds nothing. Nothing else stood in the way.
    record_path(tmp_path / "ledger.key").unlink()
    sign_checkpoint(attacked)
    assert findings(attacked) == []
    (tmp_path / "court-monitor.txt").write_text(kept_note)
    run = taxgate("ledger", "verify", "--checkpoint", tmp_path / "court-monitor.txt")
    assert run.returncode == 1 and "court-monitor.txt" in run.stderr, run


def test_a_truncated_checkpoint_history_is_refused_by_the_signer(attacked):
    from taxgate.ledger import LedgerError

    sql(attacked, "DELETE FROM ledger_checkpoints")
    assert_found(attacked, "no signed checkpoint")
    with pytest.raises(LedgerError, match="no longer holds the checkpoint"):
        sign_checkpoint(attacked)


def test_older_checkpoints_deleted_are_refused_by_the_signer(attacked):
    from taxgate.ledger import LedgerError

    sql(
        attacked,
        "DELETE FROM ledger_checkpoints WHERE size < (SELECT max(size) FROM ledger_checkpoints)",
    )
    with pytest.raises(LedgerError, match=r"fewer than the \d+ it held"):
        sign_checkpoint(attacked)


def test_an_intact_store_verifies_on_the_command_line(attacked):
    run = taxgate("ledger", "verify")
    assert run.returncode == 0 and "Ledger verified" in run.stdout, run
    assert one(attacked, "SELECT count(*) FROM held_items") > 0
    with attacked.session() as session:
        assert session.execute(select(func.count(Disclosure.id))).scalar_one() > 0


def test_the_two_process_walk_finds_what_one_process_finds(attacked, monkeypatch):
    """A large ledger is walked by two processes (the log and a third of the rows, the rest of the
    rows); forced on this small one, it must find exactly what one process finds."""
    from taxgate import verification

    monkeypatch.setattr(verification, "PARALLEL_FROM", 0)
    assert list(verification.verify_store(attacked, verifier_key(), workers=2)) == []
    for tamper in (
        "one taxpayer's decision and disclosure deleted",
        "a batch's as-of date",
        "the address a held item will release",
        "a disclosure row with no entry",
        "a notice sent that never was",
    ):
        sql(attacked, *TAMPERS[tamper][0])
    one = sorted(f.message for f in verification.verify_store(attacked, verifier_key(), workers=1))
    two = sorted(f.message for f in verification.verify_store(attacked, verifier_key(), workers=2))
    assert one == two and len(one) >= 6, (one, two)


def test_a_resumed_batch_answers_from_the_ledger_not_from_an_edited_row(attacked, world):
    """A batch sent again gets the answer it was given; a decision edited in its table since is
    not that answer, and the run refuses rather than repeat the edit."""
    sql(
        attacked,
        "UPDATE decisions SET outcome = 'DISCLOSED' WHERE id = (SELECT min(id) FROM decisions "
        "WHERE batch_id = 1 AND outcome = 'REFUSED')",
    )
    with pytest.raises(
        TamperedError, match="outcome is 'REFUSED' in the ledger, 'DISCLOSED' in the table"
    ):
        process(
            world["manifest"],
            world["master"],
            Path(os.environ["TAXGATE_LEDGER_KEY"]).parent / "again",
            store=attacked,
        )


@pytest.mark.parametrize(
    "mark", ["rows deleted and the mark moved back with them", "the mark moved back alone"]
)
def test_a_batch_whose_mark_was_moved_back_is_not_decided_twice(attacked, world, mark):
    statements = [
        "UPDATE batches SET status = 'processing', committed_rows = 150, completed_index = NULL WHERE id = 1"
    ]
    if mark.startswith("rows"):
        statements.insert(
            0,
            "DELETE FROM decisions WHERE batch_id = 1 AND row_number > 150 AND id NOT IN "
            "(SELECT decision_id FROM disclosures UNION SELECT decision_id FROM held_items "
            "UNION SELECT decision_id FROM reviews)",
        )
    sql(attacked, *statements)
    before = one(attacked, "SELECT size FROM ledger_head")
    with pytest.raises(TamperedError, match="the ledger holds its decisions up to row"):
        process(
            world["manifest"],
            world["master"],
            Path(os.environ["TAXGATE_LEDGER_KEY"]).parent / "again",
            store=attacked,
        )
    assert one(attacked, "SELECT size FROM ledger_head") == before  # nothing ledgered twice


def test_a_checkpoint_history_cut_and_padded_is_refused_by_the_signer(attacked):
    from taxgate.ledger import LedgerError

    sql(
        attacked,
        "DELETE FROM ledger_checkpoints WHERE size = (SELECT min(size) FROM ledger_checkpoints)",
        "INSERT INTO ledger_checkpoints (size, note, signed_at) SELECT 7, note, signed_at FROM ledger_checkpoints "
        "WHERE size = (SELECT max(size) FROM ledger_checkpoints)",
    )
    with pytest.raises(LedgerError, match="is for size"):
        sign_checkpoint(attacked)


def test_an_older_checkpoint_deleted_is_found_by_verify_where_the_signer_s_record_is(attacked):
    sql(
        attacked,
        "DELETE FROM ledger_checkpoints WHERE size = (SELECT min(size) FROM ledger_checkpoints)",
    )
    run = taxgate("ledger", "verify")
    assert (
        run.returncode == 1 and "fewer than the" in run.stderr and "Traceback" not in run.stderr
    ), run.stderr
