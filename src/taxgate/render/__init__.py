"""Documents for people: one structure, rendered as a self-contained HTML file and as a PDF.

Notices (`notices.documents`) and the oversight report (`reports.oversight`) build a `Document`;
this module lays it out. The HTML carries its styles and its charts (inline SVG) and loads nothing,
so a judge opens it offline; the PDF (fpdf2, pure Python) carries the same text, tables and charts.
Charts are drawn once by matplotlib, as SVG for the HTML and PNG for the PDF.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(loader=PackageLoader("taxgate.render", "templates"), autoescape=select_autoescape(["html"]))
_env.tests["numeric"] = lambda value: bool(re.fullmatch(r"[-+]?[\d,]+(\.\d+)?%?", str(value)))  # right-aligned


@dataclass(frozen=True)
class Figure:
    name: str  # a stable id, so tests and readers can find the chart
    caption: str
    svg: str
    png: bytes


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    preformatted: str = ""  # e.g. a signed checkpoint, shown verbatim


@dataclass
class Document:
    title: str
    subtitle: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)  # label, value
    sections: list[Section] = field(default_factory=list)
    footer: str = ""


def bar_chart(name: str, caption: str, labels: list[str], values: list[float], horizontal: bool = True,
              reference: float | None = None, reference_label: str = "", value_format: str = "{:,.0f}") -> Figure:
    """A bar chart as SVG and PNG. `reference` draws a line (a policy limit, say) across the bars.

    Labels come from the store, so from requesters (batch refs, officer names): they are drawn as
    plain text, never as matplotlib's math (`$...$` would otherwise fail every report that shows
    them), cut to a length, and at most MAX_BARS are drawn (the largest, or the latest)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if len(labels) > MAX_BARS:
        keep = (sorted(range(len(values)), key=lambda i: -values[i])[:MAX_BARS] if horizontal
                else range(len(values) - MAX_BARS, len(values)))
        keep = sorted(keep)
        caption = f"{caption} ({MAX_BARS} of {len(labels):,} shown: the {'largest' if horizontal else 'latest'}.)"
        labels, values = [labels[i] for i in keep], [values[i] for i in keep]
    labels = [label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…" for label in map(str, labels)]
    count = max(len(labels), 1)
    size = (7.5, max(2.0, 0.32 * count + 1.0)) if horizontal else (7.5, 3.2)
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        return _draw(plt, name, caption, labels, values, horizontal, reference, reference_label, value_format, size)


MAX_BARS = 40
MAX_LABEL = 48


def _draw(plt, name, caption, labels, values, horizontal, reference, reference_label, value_format, size) -> Figure:
    fig, ax = plt.subplots(figsize=size, dpi=110)
    try:
        if not labels:
            ax.text(0.5, 0.5, "nothing recorded yet", ha="center", va="center", transform=ax.transAxes, color="#555")
            ax.set_axis_off()
        elif horizontal:
            positions = list(range(len(labels)))[::-1]
            bars = ax.barh(positions, values, color="#1f5f8b")
            ax.set_yticks(positions, labels, fontsize=8)
            ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=7, padding=2)
            if reference is not None:
                ax.axvline(reference, color="#b03a2e", linestyle="--", linewidth=1, label=reference_label)
                ax.legend(fontsize=7, loc="lower right")
        else:
            bars = ax.bar(range(len(labels)), values, color="#1f5f8b")
            ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30 if len(labels) > 6 else 0, ha="right"
                          if len(labels) > 6 else "center")
            ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=7, padding=2)
            if reference is not None:
                ax.axhline(reference, color="#b03a2e", linestyle="--", linewidth=1, label=reference_label)
                ax.legend(fontsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        svg, png = io.StringIO(), io.BytesIO()
        fig.savefig(svg, format="svg")
        fig.savefig(png, format="png")
    finally:
        plt.close(fig)
    text = svg.getvalue()
    return Figure(name, caption, text[text.index("<svg"):], png.getvalue())


def to_html(document: Document) -> str:
    return _env.get_template("document.html").render(doc=document)


def to_pdf(document: Document) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="Letter")
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(_latin1(document.title))
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(width, 7, _latin1(document.title))
    if document.subtitle:
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(width, 5, _latin1(document.subtitle))
    pdf.ln(2)
    if document.facts:
        _table(pdf, ("", ""), [(k, v) for k, v in document.facts], header=False)
    for section in document.sections:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(width, 6, _latin1(section.heading))
        pdf.set_font("Helvetica", "", 9.5)
        for paragraph in section.paragraphs:
            pdf.multi_cell(width, 4.8, _latin1(paragraph))
            pdf.ln(1)
        if section.rows:
            _table(pdf, section.columns, section.rows)
        for figure in section.figures:
            pdf.image(io.BytesIO(figure.png), w=min(width, 170))
            pdf.set_font("Helvetica", "I", 8)
            pdf.multi_cell(width, 4, _latin1(figure.caption))
            pdf.set_font("Helvetica", "", 9.5)
        if section.preformatted:
            pdf.set_font("Courier", "", 7.5)
            pdf.multi_cell(width, 3.6, _latin1(section.preformatted))
            pdf.set_font("Helvetica", "", 9.5)
    if document.footer:
        pdf.ln(4)
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(width, 4, _latin1(document.footer))
    return bytes(pdf.output())


def write(document: Document, path: Path) -> tuple[Path, Path]:
    """`path` with .html and .pdf suffixes; returns both paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    html, pdf = path.with_suffix(".html"), path.with_suffix(".pdf")
    html.write_text(to_html(document), encoding="utf-8")
    pdf.write_bytes(to_pdf(document))
    return html, pdf


def _table(pdf, columns: tuple[str, ...], rows: list[tuple[str, ...]], header: bool = True) -> None:
    pdf.set_font("Helvetica", "", 8.5)
    with pdf.table(first_row_as_headings=header, line_height=4.5, text_align="LEFT") as table:
        if header:
            table.row([_latin1(c) for c in columns])
        for row in rows:
            table.row([_latin1(str(v)) for v in row])
    pdf.set_font("Helvetica", "", 9.5)


_PLAIN = {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
          "\u2265": ">=", "\u2264": "<=", "\u00d7": "x", "\u2192": "->", "\u2022": "-"}


def _latin1(text: str) -> str:
    """The PDF's built-in fonts cover Latin-1 (§ included); anything else is spelled plainly."""
    out = []
    for ch in text:
        ch = _PLAIN.get(ch, ch)
        if len(ch) == 1 and ord(ch) > 255:
            ch = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1") or "?"
        out.append(ch)
    return "".join(out)
