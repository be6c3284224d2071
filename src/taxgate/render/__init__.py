"""Documents for people: one structure, one HTML page, and the PDF of that same page.

Notices (`notices.documents`) and the oversight report (`reports.oversight`) build a `Document`;
this module lays it out. The HTML carries its styles and its charts (inline SVG, `charts`) and
loads nothing, so a judge opens it offline; its Content-Security-Policy is as strict as the
console's (the one style block allowed by its hash, no inline style attributes). The PDF is that
HTML printed by WeasyPrint under the template's `@page` rules, so the two cannot say different things.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from taxgate.render.charts import Figure, bar_chart, waterfall_chart

_env = Environment(
    loader=PackageLoader("taxgate.render", "templates"), autoescape=select_autoescape(["html"])
)
_env.tests["numeric"] = lambda value: bool(
    re.fullmatch(r"[-+]?[\d,]+(\.\d+)?%?", str(value))
)  # right-aligned
_env.tests["date"] = lambda value: bool(
    re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value))
)  # never broken
# A cell with a token too long for a column (a SHA-256, a batch ref) may break inside it; others only at spaces.
_env.tests["unbreakable"] = lambda value: any(len(token) > 20 for token in str(value).split())


def commands(text: str) -> Markup:
    """Text with each `command` in backticks set as code, as a reader types it (the rest escaped)."""
    parts = str(Markup.escape(text)).split("`")
    if len(parts) % 2 == 0:  # an odd backtick is a character, not a delimiter
        return Markup.escape(text)
    return Markup(
        "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))
    )


_env.filters["commands"] = commands


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    preformatted: str = ""  # e.g. a signed checkpoint, shown verbatim
    lines: list[str] = field(default_factory=list)  # e.g. a mailing address, one line each


@dataclass
class Document:
    title: str
    subtitle: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)  # label, value
    sections: list[Section] = field(default_factory=list)
    footer: str = ""


def _styles() -> tuple[str, str]:
    styles = _env.get_template("document.css").render()
    return styles, base64.b64encode(hashlib.sha256(styles.encode()).digest()).decode()


def policy() -> str:
    """The Content-Security-Policy every document carries (in its own <meta>, and as the header
    when the console serves one): nothing loads, and only its one style block applies."""
    return f"default-src 'none'; style-src 'sha256-{_styles()[1]}'; img-src data:"


def to_html(document: Document) -> str:
    styles, _ = _styles()
    return _env.get_template("document.html").render(
        doc=document, styles=Markup(styles), policy=policy()
    )


def to_pdf(document: Document) -> bytes:
    return html_to_pdf(to_html(document))


def html_to_pdf(html: str) -> bytes:
    """The PDF of that very HTML, laid out by WeasyPrint under the stylesheet's print rules."""
    from weasyprint import HTML

    return HTML(string=html).write_pdf()


def write(document: Document, path: Path) -> tuple[Path, Path]:
    """`path` with .html and .pdf suffixes; returns both paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    html, pdf = path.with_suffix(".html"), path.with_suffix(".pdf")
    page = to_html(document)
    html.write_text(page, encoding="utf-8")
    pdf.write_bytes(html_to_pdf(page))
    return html, pdf


__all__ = [
    "Document",
    "Figure",
    "Section",
    "bar_chart",
    "html_to_pdf",
    "policy",
    "to_html",
    "to_pdf",
    "waterfall_chart",
    "write",
]
