"""Every console page as each of its readers sees it, in Chromium against a running server: axe-core
finds no serious or critical accessibility violation, no text runs out of the window, and the
console's CSP refuses nothing the page itself carries."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from taxgate import accounts

from seeing import CHROMIUM, CHROMIUM_ARGS, assert_chart_drawn, axe_violations
from support import PASSWORD, Server, wait_done

pytestmark = pytest.mark.slow  # the console in a browser, a live server

ROLES = ("requester", "officer", "court", "auditor", "admin")
PAGES = {  # what each role opens (ids filled in once the batch is decided)
    "requester": ("/", "/batches", "/batches/1", "/requests?id=R0000001", "/ledger", "/account"),
    "officer": (
        "/",
        "/batches",
        "/batches/1",
        "/reviews",
        "/reviews/{decision}",
        "/orders",
        "/orders/1/lift",
        "/notices",
        "/requests?id=R0000001",
        "/ledger",
        "/account",
    ),
    "court": (
        "/",
        "/batches",
        "/orders",
        "/notices",
        "/notices/1.html",
        "/reports/oversight.html",
        "/ledger",
        "/account",
    ),
    "auditor": (
        "/",
        "/batches",
        "/reviews/{decision}",
        "/orders",
        "/notices",
        "/ledger",
        "/ledger?index=1",
        "/accounting",
        "/reads",
        "/refusals",
        "/requests?id=R0000001",
        "/account",
    ),
    "admin": ("/", "/users", "/ledger", "/account"),
}


@pytest.mark.parametrize("role", ROLES)
def test_every_page_reads_right(role, world, small_batch, database_url, store, tmp_path):
    for name in ROLES:
        accounts.add_user(store, name, name, "DHS-ICE" if name == "requester" else "", PASSWORD)
    token = {"Authorization": f"Bearer {accounts.issue_token(store, 'requester')}"}
    officer = {"Authorization": f"Bearer {accounts.issue_token(store, 'officer')}"}
    server = Server(world["master"], tmp_path, database_url).start()
    try:
        import httpx

        from support import rows_of

        files = {"manifest": small_batch.read_bytes(), "rows": rows_of(small_batch).read_bytes()}
        sent = httpx.post(
            f"{server.url}/api/batches",
            headers=token,
            files={
                "manifest": ("manifest.json", files["manifest"]),
                "rows": (rows_of(small_batch).name, files["rows"]),
            },
        )
        assert sent.status_code == 202, sent.text
        wait_done(server, token, sent.json()["id"])
        decision = httpx.get(f"{server.url}/api/reviews", headers=officer).json()["reviews"][0][
            "decision"
        ]
        httpx.post(
            f"{server.url}/api/orders",
            headers=officer,
            json={
                "kind": "stay",
                "court": "D.D.C.",
                "docket": "1:26-cv-00009",
                "issued": "2030-01-01",
                "effective_from": "2030-01-01",
                "effective_to": None,
                "hours": None,
                "scope": {"agency": "DHS-ICE", "statutes": []},
                "notify": ["court"],
            },
        ).raise_for_status()
        httpx.post(
            f"{server.url}/api/orders",
            headers=officer,
            json={  # a use bar: a notice owed at once
                "kind": "use_bar",
                "court": "D.D.C.",
                "docket": "1:26-cv-00010",
                "issued": "2026-01-05",
                "effective_from": "2026-01-05",
                "effective_to": None,
                "hours": None,
                "scope": {"agency": "DHS-ICE", "statutes": []},
                "notify": ["court"],
            },
        ).raise_for_status()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            blocked: list[str] = []
            page.on(
                "console",
                lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(server.url + "/login")
            page.get_by_label("User name").fill(role)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(server.url + "/")
            for path in PAGES[role]:
                url = server.url + path.format(decision=decision)
                answer = page.goto(url)
                assert answer.status == 200, (role, path, answer.status)
                assert axe_violations(page) == [], (role, path)
                wider = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert wider <= 0, f"{path} is {wider}px wider than the window"
            assert blocked == [], blocked
            if role == "court":  # a document served by the console keeps its own styles and charts
                for path in ("/notices/1.html", "/reports/oversight.html"):
                    page.goto(server.url + path)
                    rule = page.evaluate(
                        "getComputedStyle(document.querySelector('h2')).borderBottomColor"
                    )
                    assert rule == "rgb(31, 95, 139)", (path, rule)
                chart = page.locator("figure#chart-outcomes-by-reason svg")
                chart.screenshot(path=str(tmp_path / "served-report-chart.png"))
                assert_chart_drawn(tmp_path / "served-report-chart.png", "outcomes-by-reason")
            browser.close()
    finally:
        server.stop()
