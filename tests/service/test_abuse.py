"""The service under attack (issue 13), on loopback only and bounded: a curious admin, a hostile
requester, a flood of clients. Each test is the attack; what it asserts is what must still hold."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from taxgate import accounts
from taxgate.service import Settings
from taxgate.store.models import AccessRefusal, AccountEvent, DecisionRecord, Submission

from support import STAY, Service, console, findings, refusals, upload_files

pytestmark = pytest.mark.slow  # a service under hostile input, batches end to end


def ledgered_events(store) -> list[tuple]:
    with store.session() as session:
        return session.execute(
            select(
                AccountEvent.event, AccountEvent.username, AccountEvent.actor, AccountEvent.via
            ).order_by(AccountEvent.id)
        ).all()


# -- no role obtains another role's power ----------------------------------------------------------


def test_an_admin_cannot_issue_a_token_for_someone_else(service):
    """The 2026 escalation: an admin made a requester's token and read its agency's answers."""
    admin = service.auth("admin")
    for path in ("/api/users/requester/tokens", "/api/users/requester/token"):
        assert service.client.post(path, headers=admin).status_code in (404, 405)
    client, csrf = console(service, "admin")
    assert client.post("/users/requester/token", data={"csrf": csrf}).status_code in (404, 405)
    # the only token an admin can make in the console is its own
    made = client.post("/account/tokens", data={"csrf": csrf, "label": "mine"})
    token = re.search(r"<code>(tg_[^<]+)</code>", made.text).group(1)
    assert accounts.by_token(service.store, token).username == "admin"
    with pytest.raises(accounts.AccountError, match="only to its own user"):
        accounts.issue_token(service.store, "requester", by="admin", via="console")
    # and who did it is ledgered, and the ledger and the table agree
    assert ledgered_events(service.store)[-1] == ("token_issued", "admin", "admin", "console")
    assert findings(service.store) == []


def test_issuing_and_revoking_are_ledgered_with_who_did_it(service):
    officer = service.auth("officer")
    mine = service.client.get("/api/tokens", headers=officer).json()["tokens"]
    assert [t["revoked"] for t in mine] == [None]
    # someone else's token cannot be revoked by a non-admin (it does not exist, for them)
    theirs = service.client.get("/api/tokens", headers=service.auth("court")).json()["tokens"][0][
        "id"
    ]
    assert service.client.delete(f"/api/tokens/{theirs}", headers=officer).status_code == 404
    # an admin may revoke anyone's (taking power away is not gaining it)
    gone = service.client.delete(f"/api/tokens/{theirs}", headers=service.auth("admin"))
    assert gone.status_code == 200 and gone.json()["username"] == "court"
    assert service.client.get("/api/whoami", headers=service.auth("court")).status_code == 401
    assert service.client.delete(f"/api/tokens/{mine[0]['id']}", headers=officer).status_code == 200
    assert service.client.get("/api/whoami", headers=officer).status_code == 401
    events = ledgered_events(service.store)
    assert events[-2:] == [
        ("token_revoked", "court", "admin", "api"),
        ("token_revoked", "officer", "officer", "api"),
    ]
    host = [e for e in events if e[0] == "token_issued" and e[1] == "requester"]
    assert (
        host and host[0][2].startswith("host:") and host[0][3] == "host"
    )  # the fixture's, made on the host
    assert findings(service.store) == []


def test_an_account_event_edited_in_its_table_is_found(service):
    with service.store.session.begin() as session:
        row = (
            session.execute(select(AccountEvent).where(AccountEvent.event == "token_issued"))
            .scalars()
            .first()
        )
        row.actor = "someone-else"
    found = findings(service.store)
    assert any("account_events" in f and "someone-else" in f for f in found), found


def test_a_password_change_ends_every_session_and_token(service):
    client, csrf = console(service, "auditor")
    other, _ = console(service, "auditor")  # a second session, say a stolen one
    wrong = client.post(
        "/account/password", data={"csrf": csrf, "current": "not-my-password", "new": "n" * 14}
    )
    assert wrong.status_code == 403
    changed = client.post(
        "/account/password",
        data={
            "csrf": csrf,
            "current": service.passwords["auditor"],
            "new": "a-new-password-for-tests",
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert other.get("/refusals", follow_redirects=False).status_code == 303  # signed out
    assert service.client.get("/api/whoami", headers=service.auth("auditor")).status_code == 401
    assert accounts.by_password(service.store, "auditor", service.passwords["auditor"]) is None
    assert ledgered_events(service.store)[-1][:2] == ("password_set", "auditor")


def test_a_user_can_be_enabled_again_and_the_last_admin_cannot_disable_itself(service):
    admin = service.auth("admin")
    answer = service.client.post("/api/users/admin/disable", headers=admin)
    assert answer.status_code == 409 and "last enabled administrator" in answer.json()["detail"]
    assert service.client.get("/api/whoami", headers=admin).status_code == 200
    assert service.client.post("/api/users/court/disable", headers=admin).status_code == 200
    assert service.client.post("/api/users/court/enable", headers=admin).status_code == 200
    assert service.client.post("/api/users/court/enable", headers=admin).status_code == 409
    assert (
        service.client.get("/api/whoami", headers=service.auth("court")).status_code == 401
    )  # old tokens stay revoked
    assert accounts.by_password(service.store, "court", service.passwords["court"]).role == "court"


# -- every read of taxpayer data is logged; the master is not a window -----------------------------


@pytest.fixture()
def decided(service, small_batch):
    assert service.submit(small_batch).status_code == 202
    assert service.run_queued() == 1
    return service


def test_an_officer_reads_the_master_only_for_a_request_in_review(decided):
    service = decided
    with service.store.session() as session:
        closed = (
            session.execute(
                select(DecisionRecord.id).where(
                    DecisionRecord.outcome.in_(("DISCLOSED", "NOT_DISCLOSED")),
                    DecisionRecord.matched_tin != "",
                )
            )
            .scalars()
            .first()
        )
        open_ = (
            session.execute(select(DecisionRecord.id).where(DecisionRecord.outcome == "REVIEW"))
            .scalars()
            .first()
        )
    officer, auditor = service.auth("officer"), service.auth("auditor")
    refused = service.client.get(f"/api/reviews/{closed}", headers=officer)
    assert refused.status_code == 409 and "not in review" in refused.json()["detail"]
    assert "records" not in refused.text and "date_of_birth" not in refused.text
    assert service.client.get(f"/api/reviews/{open_}", headers=officer).status_code == 200
    assert service.client.get(f"/api/reviews/{closed}", headers=auditor).json()["candidate"][
        "records"
    ]
    client, _ = console(service, "officer")
    assert client.get(f"/reviews/{closed}").status_code == 409
    reads = accounts.reads(service.store, event="review_case")
    assert [(r["username"], r["object"], r["outcome"]) for r in reversed(reads)] == [
        ("officer", f"decision {closed}", "failure"),
        ("officer", f"decision {open_}", "success"),
        ("auditor", f"decision {closed}", "success"),
        ("officer", f"decision {closed}", "failure"),
    ]
    assert all(r["origin"] == "testclient" and r["at"] for r in reads)


def test_every_read_of_taxpayer_data_is_an_audit_record(decided):
    service = decided
    requester, auditor = service.auth("requester"), service.auth("auditor")
    service.client.get("/api/batches/1/response", headers=requester)
    service.client.get("/api/batches/1/releases", headers=requester)
    service.client.get("/api/reviews", headers=service.auth("officer"))
    service.client.post("/api/accounting", json={"tin": "123-45-6789"}, headers=auditor)
    service.client.get("/api/ledger/proof/0", headers=auditor)
    service.client.get("/api/notices", headers=auditor)
    got = {
        (r["event"], r["username"], r["outcome"])
        for r in service.client.get("/api/reads", headers=auditor).json()["reads"]
    }
    assert got >= {
        ("response", "requester", "success"),
        ("releases", "requester", "success"),
        ("review_queue", "officer", "success"),
        ("accounting", "auditor", "success"),
        ("notices", "auditor", "success"),
    }
    assert ("ledger_entry", "auditor", "success") in got or (
        "ledger_entry",
        "auditor",
        "failure",
    ) in got
    narrowed = service.client.get("/api/reads?object=tin%20123456789", headers=auditor).json()[
        "reads"
    ]
    assert [r["event"] for r in narrowed] == ["accounting"]


# -- stored denial of service ----------------------------------------------------------------------


def test_math_text_in_a_batch_ref_or_officer_name_breaks_no_report(service, small_batch, tmp_path):
    """`$\\nosuchcmd$` in what a requester writes was matplotlib math: every report answered 500."""
    manifest = json.loads(small_batch.read_text())
    table = list(
        csv.reader(
            io.StringIO((small_batch.parent / manifest["requests"]).read_text(errors="replace"))
        )
    )[:30]
    officer = table[0].index("engaged_official")
    for row in table[1:]:
        row[officer] = r"Agent $\nosuchcmd$ {x}_^"
    out = io.StringIO()
    csv.writer(out).writerows(table)
    hostile = dict(
        manifest_bytes=json.dumps({**manifest, "batch_ref": r"Q3 $\nosuchcmd$"}).encode(),
        rows=out.getvalue().encode(),
    )
    assert (
        service.client.post(
            "/api/batches",
            headers=service.auth("requester"),
            files=upload_files(small_batch, **hostile),
        ).status_code
        == 202
    )
    service.run_queued()
    for role in ("officer", "court", "auditor"):
        client, _ = console(service, role)
        assert client.get("/").status_code == 200, role
    court, _ = console(service, "court")
    for fmt in ("html", "pdf"):
        assert court.get(f"/reports/oversight.{fmt}").status_code == 200


# -- sign-in ----------------------------------------------------------------------------------------


def sign_in(client: TestClient, username: str, password: str) -> int:
    token = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post(
        "/login",
        data={"username": username, "password": password, "login_token": token},
        follow_redirects=False,
    ).status_code


def test_nobody_elsewhere_can_lock_a_court_monitor_out(service):
    attacker = TestClient(service.app, client=("203.0.113.9", 4000))
    assert [sign_in(attacker, "court", "wrong-password-x") for _ in range(12)][-2:] == [429, 429]
    monitor = TestClient(service.app, client=("198.51.100.7", 4000))
    assert sign_in(monitor, "court", service.passwords["court"]) == 303


def test_distinct_names_from_one_client_are_throttled_too(service):
    flood = TestClient(service.app, client=("203.0.113.10", 4000))
    statuses = [sign_in(flood, f"nobody{i}", "wrong-password-x") for i in range(40)]
    assert statuses.count(429) >= 10  # per client address: 30 a minute, whatever the names


def test_the_throttle_is_held_in_the_store_so_every_server_counts_the_same(store, world, tmp_path):
    one = Service(store, world, tmp_path / "a")
    from taxgate.service import create_app

    other = TestClient(create_app(one.settings, store), client=("203.0.113.11", 1))
    first = TestClient(one.app, client=("203.0.113.11", 1))
    statuses = [sign_in(first if i % 2 else other, "court", "wrong-password-x") for i in range(12)]
    assert statuses[-2:] == [429, 429]


# -- the refusal log, headers, origins ---------------------------------------------------------------


def test_a_flood_of_refusals_is_counted_not_added(service):
    before_rows = _rows(service.store)
    for i in range(250):
        service.client.get(f"/api/batches/{i + 1}")
    assert refusals(service.store) >= 250
    assert _rows(service.store) - before_rows <= 2  # one line with a count, not 250 lines


def _rows(store) -> int:
    with store.session() as session:
        return session.execute(select(func.count(AccessRefusal.id))).scalar_one()


def test_status_text_never_comes_from_the_query_string(service):
    client, _ = console(service, "officer")
    for path in ("/batches", "/reviews", "/orders"):
        page = client.get(f"{path}?message=Your+account+is+locked.+Call+555-0100").text
        assert "555-0100" not in page, path


def test_error_pages_carry_the_security_headers(service, monkeypatch):
    import taxgate.service.orders as orders

    monkeypatch.setattr(orders, "list_orders", lambda store: 1 / 0)  # a fault of ours
    client = TestClient(service.app, raise_server_exceptions=False)
    answers = [
        client.get("/no-such-page"),
        client.get("/api/no-such-route"),
        client.get("/api/orders", headers=service.auth("court")),
        client.get("/api/whoami"),
    ]
    assert [a.status_code for a in answers] == [404, 404, 500, 401]
    for answer in answers:
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        assert (
            answer.headers["x-content-type-options"] == "nosniff"
            and answer.headers["x-frame-options"] == "DENY"
        )
        assert answer.headers["cache-control"] == "no-store"
    assert "ZeroDivisionError" not in answers[2].text


def test_hsts_behind_tls(store, world, tmp_path):
    service = Service(store, world, tmp_path, secure_cookies=True)
    assert "max-age" in service.client.get("/login").headers["strict-transport-security"]


def test_a_foreign_origin_is_refused_before_anything_is_done(service):
    order = {
        "kind": "stay",
        "court": "D.D.C.",
        "docket": "1:26-cv-9",
        "effective_from": "2026-01-01",
        "scope": {"agency": "DHS-ICE"},
        "notify": [],
    }
    answer = service.client.post(
        "/api/orders",
        headers={**service.auth("officer"), "Origin": "https://evil.example"},
        json=order,
    )
    assert answer.status_code == 403
    assert service.client.get("/api/orders", headers=service.auth("officer")).json()["orders"] == []
    same = service.client.post(
        "/api/orders",
        headers={**service.auth("officer"), "Origin": "http://testserver"},
        json=order,
    )
    assert same.status_code == 201


# -- the network --------------------------------------------------------------------------------------


class Served:
    """The app under `taxgate serve`'s own server configuration, on a loopback port."""

    def __init__(self, app, **options):
        import uvicorn

        from taxgate.service.server import config

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(
            config(app, "127.0.0.1", self.port, log_level="warning", **options)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), (
                "the server did not start"
            )
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def test_a_half_open_connection_is_cut_off(service):
    with Served(service.app, header_seconds=1.0, body_idle_seconds=1.0) as served:
        slow = socket.create_connection(("127.0.0.1", served.port))
        slow.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        slow.settimeout(5)
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started < 4
        idle_body = socket.create_connection(("127.0.0.1", served.port))
        idle_body.sendall(
            b"POST /api/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc"
        )
        idle_body.settimeout(5)
        reply = b""
        while chunk := idle_body.recv(4096):
            reply += chunk
        assert time.monotonic() - started < 8
        # a good client is served meanwhile
        import httpx

        assert httpx.get(f"http://127.0.0.1:{served.port}/login").status_code == 200


def test_a_trickled_body_and_a_crowd_from_one_address_are_cut_off(service):
    """Never idle long enough to time out, yet too slow to finish: cut once the body has run its
    idle time below the minimum rate. And one address may not hold every connection."""
    with Served(service.app, body_idle_seconds=1.0, min_body_rate=1000, per_client=3) as served:
        trickle = socket.create_connection(("127.0.0.1", served.port))
        trickle.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        started, cut = time.monotonic(), False
        while time.monotonic() - started < 6:
            try:
                trickle.sendall(b"a")
            except OSError:
                cut = True
                break
            time.sleep(0.3)
        assert cut or trickle.recv(1) == b"", "a trickling body was never cut off"
        held = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(3)]
        extra = socket.create_connection(("127.0.0.1", served.port))
        extra.settimeout(3)
        assert extra.recv(1) == b""  # the fourth from one address is closed at once
        for s in held:
            s.close()


def test_x_forwarded_for_is_not_believed_from_an_unnamed_proxy(service):
    import httpx

    with Served(service.app) as served:
        httpx.get(
            f"http://127.0.0.1:{served.port}/api/whoami", headers={"X-Forwarded-For": "192.0.2.77"}
        )
    assert {r["client"] for r in accounts.refusals(service.store)} == {"127.0.0.1"}


def test_the_store_s_rate_limit_slides_to_the_second(store):
    from taxgate.accounts.limits import Limiter

    now = [1000.5]
    limit = Limiter(store, 3, clock=lambda: now[0])
    assert [limit.admit("k")[0] for _ in range(5)] == [True, True, True, False, False]
    assert limit.admit("other") == (True, 0)  # keys are counted apart
    now[0] += 30
    assert limit.admit("k") == (
        False,
        30,
    )  # refused hits count: a flood stays refused while it goes on
    now[0] += 31  # the first second's hits have left the window; the one 31 s ago has not
    assert [limit.admit("k")[0] for _ in range(3)] == [True, True, False]


def test_a_parquet_bomb_uploaded_is_taken_and_every_row_answered_malformed(
    service, small_batch, tmp_path
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 1000
    table = pa.table(
        {
            "request_id": [f"R{i}" for i in range(n)],
            "relevance": pa.array(["x" * (1 << 20)] * n).dictionary_encode(),
        }
    )
    pq.write_table(table, tmp_path / "bomb.parquet", compression="zstd")
    manifest = json.loads(small_batch.read_text())
    parts = dict(
        manifest_bytes=json.dumps({**manifest, "requests": "requests.parquet"}).encode(),
        rows_name="requests.parquet",
        rows=(tmp_path / "bomb.parquet").read_bytes(),
    )
    answer = service.client.post(
        "/api/batches", headers=service.auth("requester"), files=upload_files(small_batch, **parts)
    )
    assert answer.status_code == 202, answer.text
    assert len(parts["rows"]) < 100_000  # 25 KB that would be 1 GiB once built
    service.run_queued()
    view = service.client.get("/api/batches/1", headers=service.auth("requester")).json()
    assert view["status"] == "done" and view["rows"] == n and view["outcomes"] == {"REFUSED": n}
    text = service.client.get("/api/batches/1/response", headers=service.auth("requester")).text
    assert text.count("MALFORMED_ROW") == n


def test_the_password_gate_checks_one_at_a_time_and_turns_a_crowd_away():
    import asyncio

    from fastapi import HTTPException

    from taxgate.service.pages import PasswordGate

    gate, running, peak = PasswordGate(at_once=1, queue=3), [0], [0]

    def check():
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        running[0] -= 1
        return "ok"

    async def crowd():
        return await asyncio.gather(*(gate.run(check) for _ in range(6)), return_exceptions=True)

    results = asyncio.run(crowd())
    assert peak[0] == 1  # argon2 never runs twice at once: the other core stays with the API
    assert results.count("ok") == 3
    assert all(isinstance(r, HTTPException) and r.status_code == 503 for r in results if r != "ok")


def test_the_oversight_report_is_drawn_once_per_ledger_size(service, monkeypatch):
    import taxgate.reports.oversight as oversight

    drawn, original = [], oversight.oversight

    def counting(*args, **kwargs):
        drawn.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(oversight, "oversight", counting)
    court, _ = console(service, "court")
    answers = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(court.get("/reports/oversight.html").status_code)
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 4 and len(drawn) == 1
    assert court.get("/reports/oversight.pdf").status_code == 200 and len(drawn) == 1


@pytest.mark.parametrize(
    "option, value",
    [
        ("workers", -1),
        ("release_every", float("nan")),
        ("uploads_per_minute", 0),
        ("max_rows_bytes", 0),
        ("max_attempts", 0),
    ],
)
def test_a_server_option_out_of_range_is_one_line_naming_it(world, tmp_path, option, value):
    from taxgate.service.settings import SettingsError

    with pytest.raises(SettingsError, match=f"server option {option}"):
        Settings(master=world["master"], data_dir=tmp_path, **{option: value})


def test_an_admin_never_sets_a_password_so_cannot_become_another_user(service):
    """An admin who could set a new officer's password could sign in as that officer."""
    admin = service.auth("admin")
    refused = service.client.post(
        "/api/users",
        headers=admin,
        json={"username": "newofficer", "role": "officer", "password": "the-admin-knows-this-one"},
    )
    assert refused.status_code == 422
    added = service.client.post(
        "/api/users", headers=admin, json={"username": "newofficer", "role": "officer"}
    )
    assert added.status_code == 201
    assert accounts.by_password(service.store, "newofficer", "the-admin-knows-this-one") is None
    with pytest.raises(accounts.AccountError, match="does not set another's password"):
        accounts.add_user(
            service.store,
            "another",
            "auditor",
            "",
            "the-admin-knows-this-one",
            by="admin",
            via="console",
        )
    client, csrf = console(service, "admin")
    page = client.post(
        "/users",
        data={
            "csrf": csrf,
            "username": "newcourt",
            "role": "court",
            "password": "the-admin-knows-this-one",
        },
    )
    assert (
        page.status_code == 200
        and accounts.by_password(service.store, "newcourt", "the-admin-knows-this-one") is None
    )


def test_every_way_to_the_master_records_and_the_entries_is_logged(decided):
    service = decided
    with service.store.session() as session:
        open_ = (
            session.execute(select(DecisionRecord.id).where(DecisionRecord.outcome == "REVIEW"))
            .scalars()
            .first()
        )
    client, csrf = console(service, "officer")
    again = client.post(
        f"/reviews/{open_}", data={"csrf": csrf, "action": "disclose", "note": "short"}
    )
    assert again.status_code == 422  # the case shown again beside the reason: a read
    assert [r["object"] for r in accounts.reads(service.store, event="review_case")] == [
        f"decision {open_}"
    ]
    assert (
        service.client.get("/log/tile/entries/000", headers=service.auth("auditor")).status_code
        == 200
    )
    assert accounts.reads(service.store, event="ledger_entries")[0]["object"] == "entries 0 to 255"


@pytest.mark.parametrize(
    "url",
    [
        "/api/reads?username=%00",  # the fuzzer's find: a 500 on PostgreSQL, whose text refuses NUL
        "/api/reads?username=ana%00&event=x",
        "/api/refusals?username=+%00+",
        "/api/batches/%00",
        "/log/checkpoint?x=%00",
    ],
)
def test_a_nul_in_a_url_is_a_clear_400_on_either_store_never_a_fault(service, url):
    answer = service.client.get(url, headers=service.auth("auditor"))
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"detail": "a URL may not contain a NUL character"}
    assert answer.headers["content-security-policy"]  # answered like any page of the service
    fine = service.client.get("/api/reads?username=ana", headers=service.auth("auditor"))
    assert fine.status_code == 200 and fine.json()["reads"] == []


@pytest.mark.parametrize(
    "role,path,body",
    [
        ("admin", "/api/users", '{"username": "ana\\u0000", "role": "court"}'),
        ("admin", "/api/users", '{"username": "ana", "role": "requester", "agency": "X\\u0000"}'),
        ("officer", "/api/orders", json.dumps({**STAY, "court": "D.D.C.\x00"})),
        ("officer", "/api/orders", json.dumps({**STAY, "notify": ["court", "a\x00b"]})),
        ("officer", "/api/orders", json.dumps({**STAY, "scope": {"agency\x00": "DHS-ICE"}})),
        (
            "officer",
            "/api/orders/1/lift",
            '{"authority": "ECF\\u0000 1", "reason": "The court said so."}',
        ),
        (
            "officer",
            "/api/reviews",
            '{"decision": 1, "action": "decline", "note": "Not\\u0000 the same."}',
        ),
        ("auditor", "/api/accounting", '{"tin": "\\u0000"}'),
        (
            "officer",
            "/api/reviews",
            b'{"decision": 1, "action": "decline", "note": "raw \x00 NUL."}',
        ),
    ],
)
def test_a_nul_in_a_json_body_is_a_clear_400_on_either_store_never_a_fault(
    service, role, path, body
):
    """PostgreSQL's text refuses NUL where SQLite keeps it: a field holding one, escaped or raw, in
    a key or nested, is refused before any route runs, alike on both stores; nothing is kept."""
    with service.store.session() as session:
        before = session.execute(select(func.count()).select_from(AccountEvent)).scalar_one()
    answer = service.client.post(
        path, headers={**service.auth(role), "content-type": "application/json"}, content=body
    )
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"detail": "a field may not contain a NUL character"}
    with service.store.session() as session:
        after = session.execute(select(func.count()).select_from(AccountEvent)).scalar_one()
    assert after == before  # no user added, nothing recorded on the way


def test_a_nul_in_a_console_form_is_a_clear_400_and_the_text_of_one_is_not(service):
    """A form field with %00 is refused like a JSON one; a court's name that merely spells
    `\\u0000` (a backslash, then u0000) is text like any other."""
    client, csrf = console(service, "admin")
    refused = client.post(
        "/users", data={"csrf": csrf, "username": "ana\x00", "role": "court", "agency": ""}
    )
    assert refused.status_code == 400, refused.text
    assert "NUL" in refused.text
    assert not [u for u in accounts.list_users(service.store) if u["username"].startswith("ana")]
    spelled = {**STAY, "court": "spelled \\u0000 out"}
    added = service.client.post("/api/orders", headers=service.auth("officer"), json=spelled)
    assert added.status_code == 201, added.text
    assert added.json()["court"] == "spelled \\u0000 out"


def test_a_text_body_larger_than_any_route_takes_is_refused_unread(service):
    answer = service.client.post(
        "/api/reviews",
        headers={**service.auth("officer"), "content-type": "application/json"},
        content=b'{"note": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    )
    assert answer.status_code == 413
    assert answer.json() == {"detail": "a JSON or form body is limited to 1024 KiB"}


@pytest.mark.parametrize(
    "content_type,body",
    [
        ("application/vnd.api+json", json.dumps({**STAY, "court": "a\x00"})),  # FastAPI parses it
        ("application/merge-patch+json", json.dumps({**STAY, "docket": "d\x00"})),
        ("application/json; profile=form", json.dumps({**STAY, "court": "a\x00"})),
        ("application/json", json.dumps({**STAY, "court": "\ud800"})),  # a lone surrogate
        ("application/json", '{"court": ' + "[" * 450 + '"\\u0000"' + "]" * 450 + "}"),
    ],
)
def test_a_json_body_in_any_dress_is_checked(service, content_type, body):
    """What the helper who attacked the guard sent: every content type FastAPI reads as JSON, a
    parameter that reads as a form, a surrogate neither store can encode, and a NUL nested past
    what a recursive walk survives, each a 400 with the service's own headers."""
    answer = service.client.post(
        "/api/orders",
        headers={**service.auth("officer"), "content-type": content_type},
        content=body.encode("utf-8", "surrogatepass"),
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith("a field may not contain a ")
    assert answer.headers["content-security-policy"]
    listed = service.client.get("/api/orders", headers=service.auth("officer")).json()
    assert listed["orders"] == []


def test_a_multipart_console_form_and_a_chunked_body_are_checked_too(service):
    client, csrf = console(service, "officer")
    sent = client.post(
        "/account/tokens", files={"csrf": (None, csrf), "label": (None, "a\x00b")}
    )  # multipart, as a browser may send any form
    assert sent.status_code == 400 and "NUL" in sent.text
    chunked = service.client.post(
        "/api/reviews",
        headers={**service.auth("officer"), "content-type": "application/json"},
        content=iter([b'{"note": "', b"x" * (2 * 1024 * 1024), b'"}']),  # no Content-Length
    )
    assert chunked.status_code == 413, chunked.text


def test_a_manifest_with_a_nul_is_refused_in_one_line(service, small_batch):
    raw = json.loads(small_batch.read_text())
    for field, value in (("batch_ref", "x\x00"), ("agency", "\ud800")):
        manifest = json.dumps({**raw, field: value}).encode()
        answer = service.submit(small_batch, manifest_bytes=manifest)
        assert answer.status_code in (400, 422), answer.text
        assert "which no field can" in answer.json()["detail"], answer.text
    with service.store.session() as session:
        assert session.execute(select(func.count()).select_from(Submission)).scalar_one() == 0
