"""Roles and scope: every route, every role, and no credentials. Nothing leaks to a caller without
the right, and every refusal is logged."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from taxgate.store.models import ApiToken, User

from support import console, refusals

pytestmark = pytest.mark.slow  # the service with batches end to end

EVERY = {"requester", "officer", "court", "auditor", "admin"}
READERS = {"requester", "officer", "court", "auditor"}

# The contract, written out here and not read from the code: who may use each API route.
API = [
    ("GET", "/api/whoami", EVERY),
    ("POST", "/api/batches", {"requester"}),
    ("GET", "/api/batches", READERS),
    ("GET", "/api/batches/{batch_id}", READERS),
    ("GET", "/api/batches/{batch_id}/response", {"requester"}),
    ("GET", "/api/batches/{batch_id}/releases", {"requester"}),
    ("GET", "/api/batches/{batch_id}/reasons", {"requester"}),
    ("GET", "/api/reasons", EVERY),
    ("GET", "/api/reviews", {"officer"}),
    (
        "GET",
        "/api/reviews/{decision_id}",
        {"officer", "auditor"},
    ),  # an officer: only while in review
    ("POST", "/api/reviews", {"officer"}),
    ("GET", "/api/orders", {"officer", "court", "auditor"}),
    ("POST", "/api/orders", {"officer"}),
    ("POST", "/api/orders/{order_id}/lift", {"officer"}),
    ("GET", "/api/notices", {"officer", "court", "auditor"}),
    ("GET", "/api/ledger/checkpoint", EVERY),
    ("GET", "/api/ledger/proof/{index}", {"auditor"}),
    ("POST", "/api/accounting", {"auditor"}),  # the TIN in the body, never in a URL
    ("GET", "/api/refusals", {"auditor"}),
    ("GET", "/api/reads", {"auditor"}),
    ("GET", "/api/accounts/events", {"admin", "auditor"}),
    ("GET", "/api/users", {"admin"}),
    ("POST", "/api/users", {"admin"}),
    ("POST", "/api/users/{username}/disable", {"admin"}),
    ("POST", "/api/users/{username}/enable", {"admin"}),
    (
        "GET",
        "/api/tokens",
        EVERY,
    ),  # one's own: nobody issues a token for another (only the host does)
    ("DELETE", "/api/tokens/{token_id}", EVERY),
    ("GET", "/api/policy", {"admin"}),
    ("GET", "/log/tile/entries/{path}", {"auditor"}),  # entries carry TINs
]

# The log as C2SP tlog-tiles serves it: checkpoint and hash tiles to anyone, no credentials needed.
PUBLIC = [
    ("GET", "/log/checkpoint"),
    ("GET", "/log/tile/{level}/{path}"),
]

CONSOLE = [
    ("GET", "/", EVERY),
    ("GET", "/batches", READERS),
    ("GET", "/batches/{batch_id}", READERS),
    ("GET", "/batches/{batch_id}/response.csv", {"requester"}),
    ("GET", "/reviews", {"officer"}),
    ("GET", "/reviews.csv", {"officer"}),
    ("GET", "/requests?id=R0000001", READERS),
    ("GET", "/batches/{batch_id}/malformed_rows.csv", {"requester"}),
    ("GET", "/orders/{order_id}/lift", {"officer"}),
    ("GET", "/notices.csv", {"officer", "court", "auditor"}),
    ("GET", "/notices/1.html", {"officer", "court", "auditor"}),
    ("GET", "/refusals.csv", {"auditor"}),
    ("GET", "/reviews/{decision_id}", {"officer", "auditor"}),
    ("GET", "/orders", {"officer", "court", "auditor"}),
    ("GET", "/notices", {"officer", "court", "auditor"}),
    ("GET", "/ledger", EVERY),
    ("GET", "/accounting", {"auditor"}),
    ("GET", "/refusals", {"auditor"}),
    ("GET", "/reads", {"auditor"}),
    ("GET", "/account", EVERY),
    ("GET", "/users", {"admin"}),
    ("GET", "/reports/oversight.html", {"court", "auditor"}),
    ("POST", "/batches", {"requester"}),
    ("POST", "/reviews/{decision_id}", {"officer"}),
    ("POST", "/accounting", {"auditor"}),
    ("POST", "/orders", {"officer"}),
    ("POST", "/orders/{order_id}/lift", {"officer"}),
    ("POST", "/ledger/check", EVERY),
    ("POST", "/users", {"admin"}),
    ("POST", "/users/{username}/disable", {"admin"}),
    ("POST", "/users/{username}/enable", {"admin"}),
    ("POST", "/account/tokens", EVERY),
    ("POST", "/account/tokens/{token_id}/revoke", EVERY),
    ("POST", "/account/password", EVERY),
]


@pytest.fixture()
def decided(service, small_batch):
    """The small batch submitted and decided, an order recorded: ids every route can be called with."""
    assert service.submit(small_batch).status_code == 202
    assert service.run_queued() == 1
    reviews = service.client.get("/api/reviews", headers=service.auth("officer")).json()["reviews"]
    assert reviews, "the small batch should leave something for review"
    order = service.client.post(
        "/api/orders",
        headers=service.auth("officer"),
        json={
            "kind": "use_bar",
            "court": "D.D.C.",
            "docket": "1:26-cv-00001",
            "issued": "2026-01-05",
            "effective_from": "2026-01-05",
            "effective_to": None,
            "hours": None,
            "scope": {"agency": "DHS-ICE", "statutes": []},
            "notify": ["court"],
        },
    )
    assert order.status_code == 201, order.text
    matched = next(r["matched_tin"] for r in reviews if r["matched_tin"])
    return {
        "batch_ref": reviews[0]["batch_ref"],
        "batch_id": 1,
        "decision_id": reviews[0]["decision"],
        "order_id": 999_999,
        "index": 0,
        "tin": matched,
        "username": "nobody",
        "level": 0,
        "path": "000",
        "token_id": 999_999,
    }


def test_every_route_is_in_the_contract(service):
    """A route added without a line here fails: the matrix is the whole API."""
    schema = service.client.get("/openapi.json").json()
    served = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert served == {(m, p) for m, p, _ in API} | set(PUBLIC)


def test_the_log_s_checkpoint_and_hash_tiles_need_no_credentials(service, decided):
    for method, template in PUBLIC:
        answer = service.client.request(method, template.format(**decided))
        assert answer.status_code == 200, (template, answer.text)
        assert "taxpayer" not in answer.text and decided["tin"].encode() not in answer.content


def test_every_api_route_with_every_role(service, decided):
    client, store = service.client, service.store
    for method, template, allowed in API:
        path = template.format(**decided)
        # no token, and a token that is not one: 401, logged, and nothing but the reason
        for headers in (
            {},
            {"Authorization": "Bearer tg_not-a-token"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            before = refusals(store)
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert (
                answer.json().keys() == {"detail"}
                and answer.headers["www-authenticate"] == "Bearer"
            )
            assert refusals(store) == before + 1
        for role in sorted(EVERY):
            before = refusals(store)
            answer = client.request(
                method, path, headers=service.auth(role), json={} if method == "POST" else None
            )
            if role in allowed:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
            else:
                assert answer.status_code == 403, (method, path, role, answer.text)
                assert answer.json() == {"detail": f"role {role} may not use this route"}
                assert refusals(store) == before + 1


def test_a_requester_sees_only_its_own_agency(service, decided):
    client = service.client
    mine = client.get("/api/batches", headers=service.auth("requester")).json()
    assert mine["total"] == 1 and mine["batches"][0]["agency"] == "DHS-ICE"
    theirs = client.get("/api/batches", headers=service.auth("other")).json()
    assert theirs == {"total": 0, "batches": []}
    for path in ("/api/batches/1", "/api/batches/1/response", "/api/batches/1/releases"):
        before = refusals(service.store)
        answer = client.get(path, headers=service.auth("other"))
        assert answer.status_code == 404 and answer.json() == {
            "detail": "no batch 1"
        }  # as if it did not exist
        assert refusals(service.store) == before + 1
    # and the one that is its own really is there
    assert (
        client.get("/api/batches/1/response", headers=service.auth("requester")).status_code == 200
    )


def test_a_disabled_user_is_refused_at_once(service):
    assert (
        service.client.get("/api/whoami", headers=service.auth("court")).json()["role"] == "court"
    )
    assert (
        service.client.post("/api/users/court/disable", headers=service.auth("admin")).status_code
        == 200
    )
    assert service.client.get("/api/whoami", headers=service.auth("court")).status_code == 401


def test_secrets_are_kept_hashed(service):
    with service.store.session() as session:
        hashes = session.execute(select(User.password_hash)).scalars().all()
        tokens = session.execute(select(ApiToken.token_sha256)).scalars().all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert not set(service.tokens.values()) & set(tokens)
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)


def test_every_console_page_with_every_role(service, decided):
    anonymous = TestClient(service.app)
    for method, template, _ in CONSOLE:
        answer = anonymous.request(method, template.format(**decided), follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), (
            method,
            template,
        )
    for role in sorted(EVERY):
        client, csrf = console(service, role)
        for method, template, allowed in CONSOLE:
            path = template.format(**decided)
            before = refusals(service.store)
            if method == "POST":
                # without the CSRF token, even the right role is refused
                answer = client.post(path, data={"note": "x"}, follow_redirects=False)
                assert answer.status_code == 403, (path, role, answer.status_code)
                assert refusals(service.store) == before + 1
                before += 1
            answer = client.request(
                method,
                path,
                headers={"X-CSRF-Token": csrf} if method == "POST" else {},
                follow_redirects=False,
            )
            if role in allowed:
                assert answer.status_code not in (401, 403), (
                    method,
                    path,
                    role,
                    answer.status_code,
                )
            else:
                assert answer.status_code == 403, (method, path, role, answer.status_code)
                assert decided["tin"] not in answer.text and decided["batch_ref"] not in answer.text
                assert refusals(service.store) == before + 1


def test_a_wrong_password_is_refused_and_logged(service):
    client = TestClient(service.app)
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)
    before = refusals(service.store)
    answer = client.post(
        "/login",
        data={"username": "officer", "password": "wrong-password-123", "login_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and "failed=1" in answer.headers["location"]
    assert (
        "set-cookie" not in answer.headers or "taxgate_session" not in answer.headers["set-cookie"]
    )
    assert refusals(service.store) == before + 1
    # the sign-in form without its own token is refused too (login CSRF)
    answer = TestClient(service.app).post(
        "/login", data={"username": "officer", "password": service.passwords["officer"]}
    )
    assert answer.status_code == 403


def test_sign_out_ends_the_session(service):
    client, csrf = console(service, "officer")
    assert client.get("/reviews", follow_redirects=False).status_code == 200
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/reviews", follow_redirects=False).status_code == 303


def test_console_ids_out_of_range_are_4xx(service):
    client, _ = console(service, "auditor")
    for path in (
        "/batches/99999999999999999999",
        "/batches/0",
        "/ledger?index=-1",
        "/ledger?index=99999999999999999999",
    ):
        assert 400 <= client.get(path).status_code < 500, path


def test_password_guessing_is_throttled(service):
    client = TestClient(service.app)
    statuses = []
    for _ in range(12):
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)
        statuses.append(
            client.post(
                "/login",
                data={"username": "admin", "password": "guess-guess-guess", "login_token": token},
                follow_redirects=False,
            ).status_code
        )
    assert statuses[:10] == [303] * 10 and statuses[10:] == [429, 429]


@pytest.mark.parametrize(
    "proof",
    [
        '{"index": 5.9, "size": 10, "entry": "", "proof": []}',
        "[" * 50_000,
        '{"index": "5_0"}',
        "not json",
        '{"index": 1, "size": 1e400}',
    ],
    ids=["float", "deep", "text index", "not json", "1e400"],
)
def test_a_malformed_proof_pasted_in_the_console_is_a_4xx_with_one_line(service, proof):
    client, csrf = console(service, "court")
    answer = client.post("/ledger/check", data={"proof": proof, "checkpoint": "", "csrf": csrf})
    assert answer.status_code == 422, answer.status_code
    rejected = re.findall(r"Proof REJECTED: [^<\n]+", answer.text)
    assert len(rejected) == 1, rejected
