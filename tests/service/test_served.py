"""`taxgate serve` as it runs: a real server process with its worker, driven over HTTP and, for
the console, by Debian's chromium through Playwright (login, upload, a review decision, an order
that holds a batch). And a server killed mid-batch: restarted, it finishes the batch, each row once."""

from __future__ import annotations

import os
import re
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import func, select

from taxgate import accounts
from taxgate.reports.oversight import CHARTS
from taxgate.store.models import DecisionRecord
from taxgate.synth import generate_batch

from seeing import CHROMIUM, CHROMIUM_ARGS, assert_chart_drawn
from support import PASSWORD, Server, findings, rows_of, wait_done

pytestmark = pytest.mark.slow  # a live server


@pytest.fixture()
def users(store):
    tokens = {}
    for role in ("requester", "officer"):
        accounts.add_user(store, role, role, "DHS-ICE" if role == "requester" else "", PASSWORD)
        tokens[role] = {"Authorization": f"Bearer {accounts.issue_token(store, role)}"}
    return tokens


def test_the_console_in_a_browser(world, small_batch, database_url, users, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is needed for this test (scripts/test installs Debian's): {CHROMIUM}"
    )
    second = generate_batch(world["master"], tmp_path / "second", 120, seed=21)
    server = Server(world["master"], tmp_path, database_url).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

            def sign_in(role: str):
                page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
                page.goto(server.url + "/")
                expect(page).to_have_url(server.url + "/login?next=/")
                page.get_by_label("User name").fill(role)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
                return page

            def upload(page, manifest: Path) -> None:
                page.goto(server.url + "/batches")
                page.get_by_label("Manifest (JSON)").set_input_files(str(manifest))
                page.get_by_label("Rows file").set_input_files(str(rows_of(manifest)))
                page.get_by_role("button", name="Submit").click()
                expect(page.get_by_role("heading", name="Batch")).to_be_visible()
                # htmx refreshes the status until the worker is done
                expect(page.locator("#status")).to_have_text("done", timeout=120_000)

            requester = sign_in("requester")
            upload(requester, small_batch)
            expect(requester.locator("#response-csv")).to_be_visible()
            with requester.expect_download() as download:
                requester.locator("#response-csv").click()
            assert download.value.suggested_filename.endswith(".csv")

            officer = sign_in("officer")
            expect(officer.locator("#waiting")).not_to_have_text("0")
            # every dashboard chart drawn in colour under the console's CSP, text as text; one with
            # nothing to draw yet says so
            for name in CHARTS:
                chart = officer.locator(f"figure#chart-{name} svg")
                assert chart.locator("text").count() >= 2, (
                    name
                )  # a title, and axes or "nothing recorded yet"
                if "nothing recorded yet" in chart.text_content():
                    continue
                chart.screenshot(path=str(tmp_path / f"dashboard-{name}.png"))
                assert_chart_drawn(tmp_path / f"dashboard-{name}.png", name)
            assert (
                officer.locator("figure svg text", has_text="nothing recorded yet").count() <= 1
            )  # only notices
            officer.goto(server.url + "/reviews")
            officer.locator("table.queue").get_by_role(
                "link", name=re.compile("^Review ")
            ).first.click()
            table = officer.locator("#side-by-side")
            expect(table).to_be_visible()
            expect(table.locator("tbody tr")).to_have_count(
                12
            )  # ten fields, the prior, the match weight
            assert "Last name" in table.inner_text() and "weight" in table.inner_text()
            # the table adds up: the prior and every field's weight make the match weight it shows
            cells = [
                table.locator("tbody tr").nth(i).locator("td").last.inner_text() for i in range(12)
            ]
            total = sum(
                float(m) for cell in cells[:11] for m in re.findall(r"weight ([+-]\d+\.\d)", cell)
            ) + float(cells[10])
            assert abs(total - float(cells[11])) < 0.6, cells
            expect(officer.locator("#why")).to_contain_text("An officer decides, not the rule")
            officer.get_by_label("disclose").check()
            officer.get_by_role("textbox", name=re.compile("^Why")).fill(
                "Same person: one letter of the street differs."
            )
            officer.get_by_role("button", name="Record the decision").click()
            expect(officer.locator(".message")).to_contain_text("DISCLOSED")

            # a stay, recorded in the console, holds the next batch's disclosures
            officer.goto(server.url + "/orders")
            officer.get_by_label("Kind", exact=False).first.select_option("stay")
            officer.get_by_label("Court", exact=True).fill("D.D.C.")
            officer.get_by_label("Docket", exact=True).fill("1:26-cv-00003")
            officer.get_by_label("In force from").fill(date.today().isoformat())
            officer.get_by_label("Agency").select_option("DHS-ICE")
            officer.get_by_role("button", name="Record the order").click()
            expect(officer.locator(".message")).to_contain_text("Order 1 recorded")
            expect(officer.locator("#order-1")).to_contain_text("stay")

            upload(requester, second)
            outcomes = requester.locator("table.outcomes").inner_text()
            counted = dict(line.split("\t") for line in outcomes.splitlines()[1:])
            assert int(counted["HELD"]) > 0 and "DISCLOSED" not in counted, outcomes
            browser.close()
    finally:
        server.stop()


def test_a_server_killed_mid_batch_finishes_it_after_restart(
    world, database_url, users, store, tmp_path
):
    manifest = world["manifest"]
    server = Server(world["master"], tmp_path, database_url, TAXGATE_RECORD_ROWS="5").start()
    requester = users["requester"]
    files = {
        "manifest": ("manifest.json", manifest.read_bytes()),
        "rows": ("requests.csv", rows_of(manifest).read_bytes()),
    }
    try:
        sent = httpx.post(server.url + "/api/batches", headers=requester, files=files).json()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until part, not all, of the batch is decided
            view = httpx.get(f"{server.url}/api/batches/{sent['id']}", headers=requester).json()
            if view["rows"] and 0 < view["decided"] < view["rows"]:
                break
            time.sleep(0.02)
        else:
            raise AssertionError(
                "never caught the batch part-way:\n" + server.log.read_text()[-3000:]
            )
    finally:
        server.kill()  # no clean shutdown at all (and never a server left behind by a failure)
    with store.session() as session:
        part = session.execute(select(func.count(DecisionRecord.id))).scalar_one()
    assert 0 < part < view["rows"]

    server.start()  # the same store and folder: the submission is queued again and resumes
    try:
        done = wait_done(server, requester, sent["id"])
    finally:
        server.stop()
    assert done["status"] == "done" and done["decided"] == done["rows"]
    with store.session() as session:
        decisions = session.execute(
            select(
                func.count(DecisionRecord.id), func.count(func.distinct(DecisionRecord.row_number))
            )
        ).one()
    assert decisions == (done["rows"], done["rows"])  # every row once
    assert findings(store) == []


def test_two_servers_on_one_store_one_killed_mid_batch_finish_every_batch_once(
    world, database_url, users, store, tmp_path
):
    """Several `taxgate serve` on one store share the queue by leases: the one killed mid-batch
    loses nothing, and nothing is decided twice."""
    from taxgate.store.models import Batch, Submission

    batches = [
        generate_batch(world["master"], tmp_path / f"b{i}", 300, seed=40 + i) for i in range(3)
    ]
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    # one row per recorded chunk: a 300-row batch takes long enough to be caught part-way
    one = Server(world["master"], tmp_path / "one", database_url, TAXGATE_RECORD_ROWS="1").start()
    two = Server(world["master"], tmp_path / "two", database_url, TAXGATE_RECORD_ROWS="1").start()
    requester = users["requester"]
    try:
        sent = []
        for manifest in batches:
            files = {
                "manifest": ("manifest.json", manifest.read_bytes()),
                "rows": ("requests.csv", rows_of(manifest).read_bytes()),
            }
            sent.append(
                httpx.post(one.url + "/api/batches", headers=requester, files=files).json()["id"]
            )
        deadline, victim = time.monotonic() + 120, None
        while (
            victim is None and time.monotonic() < deadline
        ):  # a batch part-way, in server one's worker
            with store.session() as session:
                for job in session.execute(
                    select(Submission).where(Submission.status == "running")
                ).scalars():
                    batch = session.execute(
                        select(Batch).where(Batch.batch_ref == job.batch_ref)
                    ).scalar_one_or_none()
                    pid = int(job.lease_owner.rsplit("/", 1)[1])
                    try:
                        if (
                            batch
                            and 0 < batch.committed_rows < batch.rows
                            and os.getpgid(pid) == one.process.pid
                        ):
                            victim = job.id
                    except ProcessLookupError:
                        continue
            time.sleep(0.02)
        assert victim is not None, "never caught server one's worker mid-batch"
        one.kill()
        views = [wait_done(two, requester, i, seconds=180) for i in sent]
    finally:
        one.stop()
        two.stop()
    assert [v["status"] for v in views] == ["done"] * 3 and all(
        v["decided"] == v["rows"] for v in views
    )
    with store.session() as session:
        per_batch = session.execute(
            select(
                DecisionRecord.batch_id,
                func.count(DecisionRecord.id),
                func.count(func.distinct(DecisionRecord.row_number)),
            ).group_by(DecisionRecord.batch_id)
        ).all()
        attempts = session.get(Submission, victim).attempts
    assert len(per_batch) == 3 and all(
        n == distinct for _, n, distinct in per_batch
    )  # every row once
    assert attempts == 2  # taken again by server two once the dead worker's lease lapsed
    assert findings(store) == []
