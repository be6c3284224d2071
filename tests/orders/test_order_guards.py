"""Orders are hard to get wrong: an order scoped to an agency the policy does not know is refused
(it would match nothing), and a lift says who, on what authority and why, is confirmed knowing
what it releases for good, and is ledgered so that an edit of any of it is found."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from taxgate.store.models import OrderRecord

from support import REVIEW_NOTE, console, findings, queued_reviews

pytestmark = pytest.mark.slow  # the console and batches end to end

STAY = {
    "kind": "stay",
    "court": "D.D.C.",
    "docket": "1:26-cv-00002",
    "issued": "2026-01-05",
    "effective_from": "2026-01-05",
    "effective_to": None,
    "hours": None,
    "scope": {"agency": "DHS-ICE", "statutes": []},
    "notify": ["court"],
}


def test_an_order_for_an_agency_the_policy_does_not_know_is_refused(service):
    officer = service.auth("officer")
    wrong = service.client.post(
        "/api/orders", headers=officer, json={**STAY, "scope": {"agency": "DHS ICE"}}
    )
    assert (
        wrong.status_code == 422
        and "'DHS ICE' is not an agency the policy knows: DHS-ICE" in wrong.json()["detail"]
    )
    assert service.client.post("/api/orders", headers=officer, json=STAY).status_code == 201
    browser, csrf = console(service, "officer")
    form = browser.get("/orders").text
    assert re.search(
        r'<select name="agency">\s*<option value="">every agency</option>\s*<option value="DHS-ICE"',
        form,
    )


def test_a_lift_is_confirmed_with_its_authority_and_reason_and_ledgered(service, small_batch):
    first, *_ = queued_reviews(service, small_batch)
    officer = service.auth("officer")
    stay = service.client.post("/api/orders", headers=officer, json=STAY).json()
    service.client.post(
        "/api/reviews",
        headers=officer,
        json={"decision": first["decision"], "action": "disclose", "note": REVIEW_NOTE},
    )
    # the API wants the authority and the reason
    bare = service.client.post(f"/api/orders/{stay['id']}/lift", headers=officer, json={})
    assert bare.status_code == 422
    browser, csrf = console(service, "officer")
    assert (
        f'href="/orders/{stay["id"]}/lift"' in browser.get("/orders").text
    )  # a link to a form, not a one-click lift
    confirm = browser.get(f"/orders/{stay['id']}/lift").text
    assert (
        "Lifting is final" in confirm
        and "covers 1 held item(s);\n1 of them no other order holds" in confirm
    )
    unticked = browser.post(
        f"/orders/{stay['id']}/lift",
        data={
            "csrf": csrf,
            "authority": "Order of 2026-03-01, ECF 42",
            "reason": "The court lifted the stay.",
        },
    )
    assert unticked.status_code == 422 and "tick the box" in unticked.text
    no_reason = browser.post(
        f"/orders/{stay['id']}/lift",
        data={
            "csrf": csrf,
            "authority": "Order of 2026-03-01, ECF 42",
            "reason": "ok",
            "confirm": "yes",
        },
    )
    assert no_reason.status_code == 422 and "say why" in no_reason.text
    done = browser.post(
        f"/orders/{stay['id']}/lift",
        data={
            "csrf": csrf,
            "authority": "Order of 2026-03-01, ECF 42",
            "reason": "The court lifted the stay.",
            "confirm": "yes",
        },
    )
    assert "lifted on Order of 2026-03-01, ECF 42; 1 held item(s) released" in done.text
    assert findings(service.store) == []
    # the lift's authority as stored is what the ledger says: an edit is found
    with service.store.session.begin() as session:
        session.execute(update(OrderRecord).values(lifted_authority="Order of 2026-01-01"))
    found = findings(service.store)
    assert len(found) == 1 and "order_lifted" in found[0] and "authority" in found[0], found
