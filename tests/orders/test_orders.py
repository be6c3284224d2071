"""Court orders as data: a stay in force means nothing is disclosed; lifting it releases exactly the
held requests, once; orders are checked at release; bad orders get one line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from taxgate.orders import OrderError, add_order, lift_order, parse_order
from taxgate.pipeline import process
from taxgate.release import release_held
from taxgate.store.models import Disclosure, HeldItem

from support import STAY, assert_user_error, control_store, findings, response_rows, taxgate

pytestmark = pytest.mark.slow  # orders over batches end to end


LIFT_ARGS = (
    "--by",
    "Casey Morgan, disclosure officer",
    "--authority",
    "Order of 2026-03-01, ECF 42",
    "--reason",
    "The court lifted the stay.",
)


@pytest.fixture()
def control(world, tmp_path):
    """The same batch with no order, on its own store: what would have been disclosed."""
    with control_store(tmp_path) as store:
        result = process(world["manifest"], world["master"], tmp_path / "control", store=store)
    return response_rows(
        tmp_path / "control"
    ), result  # in row order (request ids may repeat: duplicates)


def verifies(store) -> bool:
    return not findings(store)


def test_a_stay_in_force_holds_every_disclosure_and_lifting_releases_them_once(
    world, tmp_path, store, control
):
    expected, control_result = control
    order = add_order(store, STAY)
    result = process(world["manifest"], world["master"], tmp_path / "out", store=store)
    answered = response_rows(tmp_path / "out")
    assert result.outcomes.get("DISCLOSED", 0) == 0
    held = [r for r in answered if r["outcome"] == "HELD"]
    assert [i for i, r in enumerate(answered) if r["outcome"] == "HELD"] == [
        i for i, r in enumerate(expected) if r["outcome"] == "DISCLOSED"
    ]
    assert len(held) == control_result.outcomes["DISCLOSED"] > 0
    assert all("HELD_BY_COURT_ORDER" in r["reasons"] and not r["address_street"] for r in held)
    # The auditors' evidence of a held request is the control's, byte for byte, but its outcome
    # (its lines are made again at release, the evidence read back from the decision's JSON).
    evidence = (tmp_path / "out" / "auditors" / "evidence.jsonl").read_text().splitlines()
    control_evidence = (tmp_path / "control" / "auditors" / "evidence.jsonl").read_text()
    assert sum('"outcome": "HELD"' in line for line in evidence) == len(held)
    assert [
        line.replace('"outcome": "HELD"', '"outcome": "DISCLOSED"') for line in evidence
    ] == control_evidence.splitlines()
    with store.session() as session:
        assert session.scalar(select(func.count(Disclosure.id))) == 0
        assert session.scalar(select(func.count(HeldItem.id))) == len(held)

    assert release_held(store) == []  # still in force: nothing leaves
    lift_order(
        store,
        order.id,
        by="officer",
        authority="Order of 2026-03-01, ECF 42",
        reason="The court lifted the stay.",
    )
    # Lifted, but were the agreement with the agency to have expired by then, nothing could leave.
    assert release_held(store, now=datetime(2028, 1, 3, tzinfo=UTC)) == []
    released = release_held(store)
    assert sorted(r["request_id"] for r in released) == sorted(r["request_id"] for r in held)
    would_have = sorted(
        (r["request_id"], r["address_street"]) for r in expected if r["outcome"] == "DISCLOSED"
    )
    assert (
        sorted((r["request_id"], r["address_street"]) for r in released) == would_have
    )  # exactly what would have left
    assert release_held(store) == []  # once
    with pytest.raises(OrderError, match="was lifted"):
        lift_order(
            store,
            order.id,
            by="officer",
            authority="Order of 2026-03-01, ECF 42",
            reason="The court lifted the stay.",
        )
    with store.session() as session:
        assert session.scalar(select(func.count(Disclosure.id))) == len(held)
    assert verifies(store)


def test_orders_reach_only_their_scope(world, tmp_path, store, control):
    expected, control_result = control
    add_order(store, {**STAY, "scope": {"agency": "OTHER-AGENCY", "statutes": []}})
    add_order(store, {**STAY, "scope": {"agency": "DHS-ICE", "statutes": ["8 U.S.C. § 1326"]}})
    process(world["manifest"], world["master"], tmp_path / "out", store=store)
    answered = response_rows(tmp_path / "out")
    held = [r for r in answered if r["outcome"] == "HELD"]
    disclosed = [r for r in answered if r["outcome"] == "DISCLOSED"]
    assert held and disclosed  # only the § 1326 requests are held
    assert len(held) + len(disclosed) == control_result.outcomes["DISCLOSED"]


def test_a_lapsed_or_future_order_holds_nothing(world, tmp_path, store, control):
    _, control_result = control
    add_order(store, {**STAY, "effective_from": "2025-01-01", "effective_to": "2025-06-30"})
    add_order(store, {**STAY, "effective_from": "2099-01-01"})
    result = process(world["manifest"], world["master"], tmp_path / "out", store=store)
    assert result.outcomes["DISCLOSED"] == control_result.outcomes["DISCLOSED"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "injunction"}, "kind must be one of"),
        ({"docket": ""}, "lacks 'docket'"),
        ({"effective_from": "21/11/2025"}, "not a date"),
        ({"effective_to": "2025-01-01"}, "before"),
        ({"kind": "notice_before_transfer"}, "needs 'hours'"),
        ({"hours": 24}, "takes no 'hours'"),
        ({"scope": {"statutes": ["section eight"]}}, "cannot be read as a statute"),
        # a hostile or mistyped order: refused when given, never failing every later batch of its agency
        ({"kind": "notice_before_transfer", "hours": 10**15}, "from 1 to 87,840"),
        ({"kind": "notice_on_receipt", "hours": True}, "needs 'hours'"),
        ({"effective_from": "9999-12-31"}, "a date between 1900 and 2200"),
        ({"effective_from": "2025-11-21T00:00:00+99:00"}, "not a date"),
        ({"court": "x" * 201}, "longer than 200"),
        ({"notify": ["court"] * 51}, "at most 50 names"),
        ({"scope": {"agency": ["DHS-ICE"]}}, "agency's code"),
        ({"hourz": 24}, "does not know: 'hourz'"),
        # a number Python's fromisoformat reads as a date, then kept as a number no entry can hold
        ({"issued": 20251121.0}, "not a date"),
        ({"effective_from": 2025112100}, "not a date"),
        ({"effective_from": "20251121"}, "not a date"),
    ],
)
def test_bad_orders_are_refused_with_a_reason(change, message):
    with pytest.raises(OrderError, match=message):
        parse_order({**STAY, **change})


def test_orders_on_the_command_line(tmp_path):
    (tmp_path / "stay.json").write_text(json.dumps(STAY))
    added = taxgate("orders", "add", tmp_path / "stay.json")
    assert added.returncode == 0 and "Order 1 added" in added.stdout, added.stderr
    listed = taxgate("orders", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["in_force"] is True
    assert json.loads(listed.stdout)["docket"] == STAY["docket"]
    lifted = taxgate("orders", "lift", 1, "--out", tmp_path, *LIFT_ARGS)
    assert (
        lifted.returncode == 0
        and "0 held item(s) released" in lifted.stdout
        and "lifted" in lifted.stdout
    )
    assert_user_error(taxgate("orders", "lift", 1, *LIFT_ARGS), "was lifted")
    assert_user_error(taxgate("orders", "lift", 99, *LIFT_ARGS), "no order 99")
    (tmp_path / "bad.json").write_text("{")
    assert_user_error(taxgate("orders", "add", tmp_path / "bad.json"), "not valid JSON")
    (tmp_path / "bad.json").write_text(json.dumps({**STAY, "kind": "nope"}))
    assert_user_error(taxgate("orders", "add", tmp_path / "bad.json"), "kind must be one of")


def test_an_order_ledgered_with_hours_past_the_calendar_holds_for_ever_and_fails_nothing():
    """An order recorded before hours were bounded: its notice period never ends (holding longer is
    the safe reading), and deciding a batch against it raises nothing."""
    from taxgate.orders import Order, order_holding

    order = Order(
        1,
        "notice_before_transfer",
        "D.D.C.",
        "1:26-cv-1",
        date(2025, 1, 1),
        None,
        10**15,
        "DHS-ICE",
        (),
        ("court",),
        None,
        0,
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert order.after(now).year == 9999
    code, found = order_holding(
        [order], "DHS-ICE", "8 U.S.C. § 1253(a)(1)", now, {1: datetime(2025, 6, 1, tzinfo=UTC)}
    )
    assert found is order and code.name == "NOTICE_PERIOD"
