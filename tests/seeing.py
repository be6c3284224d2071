"""What a person sees, checked as they would see it: a chart's pixels, a PDF's words on its pages,
and axe-core's accessibility rules run in Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pdfplumber
from PIL import Image

# Debian's chromium, which Playwright drives through executable_path.
CHROMIUM = os.environ.get("TAXGATE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root, without a sandbox; and without the background traffic this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

BAR = (0x1F, 0x5F, 0x8B)  # the charts' bar colour (taxgate.render.charts.BAR)


def chart_pixels(png: Path) -> dict[str, float]:
    """Shares of a screenshot's pixels: near-black, near-white, and near the bar colour."""
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16).reshape(-1, 3)
    return {
        "black": float((pixels.max(axis=1) < 50).mean()),
        "white": float((pixels.min(axis=1) > 235).mean()),
        "bar": float((np.abs(pixels - np.array(BAR)).max(axis=1) <= 40).mean()),
    }


def assert_chart_drawn(png: Path, name: str) -> None:
    """Drawn in colour: bars in their colour, mostly paper, not a black box (what a CSP that
    blocks the chart's styles leaves) and not an empty white one."""
    share = chart_pixels(png)
    assert share["black"] < 0.10, f"{name}: {share['black']:.0%} of the chart is black ({share})"
    assert share["bar"] > 0.01, f"{name}: no bar in the bars' colour ({share})"
    assert 0.3 < share["white"] < 0.99, f"{name}: not a chart on paper ({share})"


def words_off_page(pdf: Path, margin: float = 9.0) -> list[str]:
    """Every word of the PDF that is not inside its page with `margin` points to spare (a word cut
    at the right edge, a table run off the page), as 'page N: word'."""
    off = []
    with pdfplumber.open(pdf) as document:
        for number, page in enumerate(document.pages, 1):
            for word in page.extract_words():
                if (
                    word["x0"] < margin
                    or word["x1"] > page.width - margin
                    or word["top"] < margin
                    or word["bottom"] > page.height - margin
                ):
                    off.append(
                        f"page {number}: {word['text']!r} at x {word['x0']:.0f}-{word['x1']:.0f} "
                        f"of {page.width:.0f}"
                    )
    return off


def pdf_text(pdf: Path) -> str:
    with pdfplumber.open(pdf) as document:
        return "\n".join(page.extract_text() or "" for page in document.pages)


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of `impacts` on the page as it stands (axe.min.js from the
    axe-playwright-python wheel, evaluated through the DevTools protocol, which no CSP governs)."""
    import axe_playwright_python

    source = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
    page.evaluate(source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in impacts
    ]
