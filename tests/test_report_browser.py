"""The oversight report opens in a real browser (Debian's chromium, driven by Playwright) with the
network cut off, and every chart is drawn; a screenshot of each one shows it rendered."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import sync_playwright

from taxgate.ledger import Ledger
from taxgate.ledger.checkpoint import verify
from taxgate.pipeline import process
from taxgate.remediation import audit, open_incident
from taxgate.reports.oversight import CHARTS, oversight
from test_cli import taxgate

CHROMIUM = os.environ.get("TAXGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root, without a sandbox; and without the background traffic this machine's closed network refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture()
def report(store, world, tmp_path) -> Path:
    """A store holding a batch, its 2025 replay, an audit and an incident; the report drawn from it."""
    process(world["manifest"], world["master"], tmp_path / "statute", store=store)
    raw = json.loads(world["manifest"].read_text())
    replayed = world["manifest"].with_name("manifest-report-2025.json")
    replayed.write_text(json.dumps({**raw, "batch_ref": raw["batch_ref"] + "-2025"}))
    process(replayed, world["master"], tmp_path / "replay", store=store, rule_set="as-practised-2025", replay=True)
    open_incident(store, audit(store, replayed, world["master"], tmp_path / "audit").audit_id)
    html, _ = oversight(store, tmp_path / "report" / "oversight.html")
    return html


def test_the_report_is_self_contained_and_draws_every_chart_offline(report, tmp_path):
    assert Path(CHROMIUM).exists(), f"Chromium is needed for this test (scripts/test installs Debian's): {CHROMIUM}"
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
        page = context.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(report.as_uri())
        assert page.title() == "taxgate oversight report"
        assert requested == [report.as_uri()]  # nothing else: no script, font, style or image fetched
        for name in CHARTS:
            chart = page.locator(f"figure#chart-{name} svg")
            box = chart.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, name
            assert chart.locator("path").count() > 5, name  # bars, axes and ticks drawn
            shot = tmp_path / f"{name}.png"
            chart.screenshot(path=str(shot))
            stats = ImageStat.Stat(Image.open(shot).convert("L"))
            assert stats.stddev[0] > 10, f"{name} looks blank"  # ink on the page, not a white box
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()


def test_the_report_states_its_checkpoint_and_the_figures_inside_it(report, store):
    text = report.read_text()
    note = text.split("<pre>")[1].split("</pre>")[0].replace("&#43;", "+").replace("&amp;", "&")
    key = Path(os.environ["TAXGATE_LEDGER_KEY"]).with_suffix(".pub").read_text().strip()
    checkpoint = verify(note, key)
    with store.session() as session:
        assert Ledger(store).root(session, checkpoint.size) == checkpoint.root
    assert f"{checkpoint.size:,} entries" in text
    assert "On the TIN path" in text and "no valid requester address" in text
    pdf = report.with_suffix(".pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Subtype /Image") >= len(CHARTS)


def test_the_command_writes_the_report(world, tmp_path):
    assert taxgate("process", world["manifest"], "--master", world["master"], "--out", tmp_path / "o").returncode == 0
    done = taxgate("report", "oversight", "--out", tmp_path / "r" / "report.html")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "report.html").stat().st_size > 10_000 and (tmp_path / "r" / "report.pdf").is_file()
