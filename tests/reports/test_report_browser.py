"""The oversight report opens in a real browser (Debian's chromium, driven by Playwright) with the
network cut off and its own strict CSP, and every chart is drawn in colour (by its pixels); its PDF
keeps every word inside the page; its figures are the store's, the statute's apart from replays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import func, select

from taxgate.ledger import Ledger
from taxgate.ledger.checkpoint import verify_note
from taxgate.pipeline import process
from taxgate.remediation import audit, open_incident
from taxgate.reports.oversight import CHARTS, oversight
from taxgate.rules import REPLAYED_VERSIONS
from taxgate.store.models import Batch, DecisionRecord, Disclosure

from seeing import (
    CHROMIUM,
    CHROMIUM_ARGS,
    assert_chart_drawn,
    axe_violations,
    pdf_text,
    words_off_page,
)
from support import taxgate

pytestmark = pytest.mark.slow  # reports in a browser and as PDF pages


@pytest.fixture()
def report(store, world, tmp_path) -> Path:
    """A store holding a batch, its 2025 replay, an audit and an incident; the report drawn from it."""
    process(world["manifest"], world["master"], tmp_path / "statute", store=store)
    raw = json.loads(world["manifest"].read_text())
    replayed = world["manifest"].with_name("manifest-report-2025.json")
    replayed.write_text(json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-2025"}))
    process(
        replayed,
        world["master"],
        tmp_path / "replay",
        store=store,
        rule_set="as-practised-2025",
        replay=True,
    )
    open_incident(store, audit(store, replayed, world["master"], tmp_path / "audit").audit_id)
    html, _ = oversight(store, tmp_path / "report" / "oversight.html")
    return html


def test_the_report_is_self_contained_and_draws_every_chart_offline(report, tmp_path):
    assert Path(CHROMIUM).exists(), (
        f"Chromium is needed for this test (scripts/test installs Debian's): {CHROMIUM}"
    )
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
        page = context.new_page()
        page.on("request", lambda r: requested.append(r.url))
        blocked: list[str] = []
        page.on(
            "console",
            lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(report.as_uri())
        assert page.title() == "taxgate oversight report"
        assert requested == [
            report.as_uri()
        ]  # nothing else: no script, font, style or image fetched
        for name in CHARTS:
            chart = page.locator(f"figure#chart-{name} svg")
            box = chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, name
            assert chart.locator("text").count() > 3, (
                name
            )  # title, axis and ticks as text, not outlines
            shot = tmp_path / f"{name}.png"
            chart.screenshot(path=str(shot))
            assert_chart_drawn(shot, name)
        assert blocked == []  # the document's own CSP refused nothing it carries
        assert axe_violations(page) == []
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()


def test_the_report_states_its_checkpoint_and_the_figures_inside_it(report, store):
    text = report.read_text()
    note = text.split("<pre>")[1].split("</pre>")[0].replace("&#43;", "+").replace("&amp;", "&")
    key = Path(os.environ["TAXGATE_LEDGER_KEY"]).with_suffix(".pub").read_text().strip()
    checkpoint = verify_note(note, key)
    with store.session() as session:
        assert Ledger(store).root(session, checkpoint.size) == checkpoint.root
    assert f"{checkpoint.size:,} entries" in text
    assert "On the TIN path" in text and "no valid requester address" in text


def test_the_pdf_is_the_html_printed_with_every_word_on_the_page(report):
    pdf = report.with_suffix(".pdf")
    assert words_off_page(pdf) == []
    text = pdf_text(pdf).replace(" ", "")  # text inside a chart is drawn word by word
    # the same document: every section heading, and the charts' titles as text (not pictures)
    for heading in (
        "Outcomes under the statute",
        "Identification",
        "Cases per officer",
        "Replays and retroactive audits",
        "Match yield by batch",
        "Review rate by batch",
        "Distinct cases per engaged officer",
    ):
        assert heading.replace(" ", "") in text, heading


def test_the_headline_counts_the_statute_and_the_replays_apart(report, store):
    text = report.read_text()
    facts = dict(
        line.split("</th><td>")
        for line in (
            r.removeprefix('<tr><th scope="row">').removesuffix("</td></tr>")
            for r in text.splitlines()
        )
        if "</th><td>" in line
    )
    with store.session() as session:
        replays = (
            session.execute(select(Batch.id).where(Batch.rule_set_version.in_(REPLAYED_VERSIONS)))
            .scalars()
            .all()
        )
        lawful = session.execute(
            select(func.count())
            .select_from(DecisionRecord)
            .where(DecisionRecord.batch_id.not_in(replays))
        ).scalar()
        released = session.execute(
            select(func.count())
            .select_from(Disclosure)
            .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
            .where(DecisionRecord.batch_id.not_in(replays))
        ).scalar()
        replayed = session.execute(
            select(func.count())
            .select_from(Disclosure)
            .join(DecisionRecord, DecisionRecord.id == Disclosure.decision_id)
            .where(DecisionRecord.batch_id.in_(replays))
        ).scalar()
    assert (
        replays and replayed > released > 0
    )  # the fixture's replay released more than the statute did
    assert facts["Batches decided under the statute"] == "1"
    assert facts["Requests decided under the statute"] == f"{lawful:,}"
    assert facts["Disclosures"].startswith(f"{released:,} (")
    assert f"{replayed:,} addresses that practice" in facts["Replays of past practice"]
    assert (
        f"{released:,} disclosures under the statute" in text
    )  # the per-day chart counts the same


def test_the_command_writes_the_report(world, tmp_path):
    assert (
        taxgate(
            "process", world["manifest"], "--master", world["master"], "--out", tmp_path / "o"
        ).returncode
        == 0
    )
    done = taxgate("report", "oversight", "--out", tmp_path / "r" / "report.html")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "report.html").stat().st_size > 10_000 and (
        tmp_path / "r" / "report.pdf"
    ).is_file()
