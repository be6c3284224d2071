"""Charts as inline SVG that a strict Content-Security-Policy lets a browser draw.

matplotlib draws the chart; its SVG styles every shape with a `style="..."` attribute and one
`<style>` element, both of which `style-src 'self'` (the console's policy, and the report's) forbids,
so the browser fills every shape black. Each declaration becomes the SVG presentation attribute of
the same name instead (fill, stroke, font-size ... are all presentation attributes), which no CSP
governs. Text stays text (`svg.fonttype: none`): selectable, searchable, and drawn by the page's
own fonts in the browser and in the PDF alike.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"

BAR, LIMIT, INK, MUTED = "#1f5f8b", "#b03a2e", "#1b1b1b", "#555555"
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
MAX_BARS = 40
MAX_LABEL = 48
MAX_HEIGHT_IN = 8.4
WIDTH_IN = 7.0  # the PDF's text width on a Letter page with 0.75in margins: drawn at 1:1, text keeps its size


@dataclass(frozen=True)
class Figure:
    name: str  # a stable id, so tests and readers can find the chart
    title: str
    caption: str
    svg: str


def bar_chart(
    name: str,
    title: str,
    labels: list[str],
    values: list[float],
    *,
    axis: str,
    caption: str = "",
    horizontal: bool = True,
    reference: float | None = None,
    reference_label: str = "",
    value_format: str = "{:,.0f}",
    maximum: float | None = None,
) -> Figure:
    """A bar chart with its title, its value axis named with its unit (`axis`), and each bar's value
    written at its end. `reference` draws a line (a policy limit, say) across the bars; `maximum`
    fixes the value axis's end (100 for a percentage: one bar alone does not fill the chart).

    Labels come from the store, so from requesters (batch refs, officer names): they are drawn as
    plain text, never as matplotlib's math (`$...$`), cut to a length, and at most MAX_BARS are
    drawn (the largest, or the latest), which the caption then says."""
    if len(labels) > MAX_BARS:
        keep = (
            sorted(range(len(values)), key=lambda i: -values[i])[:MAX_BARS]
            if horizontal
            else range(len(values) - MAX_BARS, len(values))
        )
        keep = sorted(keep)
        caption = (
            f"{caption} " if caption else ""
        ) + f"{MAX_BARS} of {len(labels):,} shown: the {'largest' if horizontal else 'latest'}."
        labels, values = [labels[i] for i in keep], [values[i] for i in keep]
    labels = [
        label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
        for label in map(str, labels)
    ]
    count = max(len(labels), 1)
    # at most a page's height (Letter, less margins and a caption): a chart is never cut by a page break
    size = (
        (WIDTH_IN, min(MAX_HEIGHT_IN, max(2.2, 0.3 * count + 1.3)))
        if horizontal
        else (WIDTH_IN, 3.4)
    )
    return _chart(
        name,
        title,
        caption,
        size,
        lambda ax: _draw(
            ax, labels, values, horizontal, reference, reference_label, value_format, axis, maximum
        ),
    )


def waterfall_chart(
    name: str,
    title: str,
    steps: list[tuple[str, float]],
    *,
    axis: str,
    total_label: str,
    lines: list[tuple[float, str, str]] = (),
    caption: str = "",
) -> Figure:
    """How each step moves a total from zero: one bar per step (for in the bars' colour, against in
    red), then the total; `lines` are (value, label, style) drawn across, a threshold say."""
    labels = [label for label, _ in steps] + [total_label]
    height = min(MAX_HEIGHT_IN, 0.3 * len(labels) + 1.6)

    def draw(ax) -> None:
        running, positions = 0.0, list(range(len(labels)))[::-1]
        for y, (_, delta) in zip(positions, steps):
            ax.barh(y, delta, left=running, color=BAR if delta >= 0 else LIMIT)
            ax.text(
                max(running, running + delta) + 0.4, y, f"{delta:+.1f}", va="center", fontsize=8
            )
            running += delta
        ax.barh(positions[-1], running, color=INK)
        ax.text(
            max(running, 0) + 0.4,
            positions[-1],
            f"{running:.1f}",
            va="center",
            fontsize=8,
            fontweight="bold",
        )
        for value, label, style in lines:
            ax.axvline(
                value,
                color=LIMIT if style == "--" else MUTED,
                linestyle=style,
                linewidth=1.2,
                label=f"{label} ({value:.1f})",
            )
        ax.axvline(0, color=INK, linewidth=0.8)
        ax.set_yticks(positions, labels)
        ax.set_xlabel(axis)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if lines:  # beneath the axis, where no bar can hide it
            ax.legend(
                fontsize=8,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.06 - 0.7 / height),
                ncol=len(lines),
                frameon=False,
            )

    return _chart(name, title, caption, (WIDTH_IN, height), draw)


# One look for every chart: the page's font at a readable size, ink not pure black, text kept as text.
RC = {
    "text.parse_math": False,
    "text.usetex": False,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.labelsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "text.color": INK,
    "axes.labelcolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
}


def _chart(name: str, title: str, caption: str, size: tuple[float, float], draw) -> Figure:
    """A chart: `draw` draws on a fresh matplotlib axis; it is then titled and kept as CSP-safe SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with matplotlib.rc_context({**RC, "svg.hashsalt": name}):
        fig, ax = plt.subplots(figsize=size, dpi=72)
        try:
            draw(ax)
            ax.set_title(title, loc="left", pad=10)
            fig.tight_layout()
            out = io.StringIO()
            fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
        finally:
            plt.close(fig)
    return Figure(name, title, caption, presentational(out.getvalue(), name, title))


def _draw(
    ax, labels, values, horizontal, reference, reference_label, value_format, axis, maximum=None
) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not labels:
        ax.text(
            0.5,
            0.5,
            "nothing recorded yet",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color=MUTED,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        return
    texts = [value_format.format(v) for v in values]
    if horizontal:
        positions = list(range(len(labels)))[::-1]
        bars = ax.barh(positions, values, color=BAR)
        ax.set_yticks(positions, labels)
        ax.set_xlabel(axis)
        line = ax.axvline
        ax.set_xlim(
            0, maximum or max(max(values), reference or 0, 1) * 1.15
        )  # room for the value labels
    else:
        bars = ax.bar(range(len(labels)), values, color=BAR)
        slanted = len(labels) > 6
        ax.set_xticks(
            range(len(labels)),
            labels,
            rotation=30 if slanted else 0,
            ha="right" if slanted else "center",
        )
        ax.set_ylabel(axis)
        line = ax.axhline
        ax.set_ylim(0, maximum or max(max(values), reference or 0, 1) * 1.15)
    ax.bar_label(bars, labels=texts, padding=2, fontsize=8)
    if reference is not None:
        line(reference, color=LIMIT, linestyle="--", linewidth=1.2, label=reference_label)
        ax.legend(fontsize=8, loc="lower right" if horizontal else "upper right", frameon=False)


def presentational(svg: str, name: str, title: str) -> str:
    """matplotlib's SVG with every `style` attribute and `<style>` rule turned into presentation
    attributes, its metadata dropped, and a title for screen readers."""
    root = ET.fromstring(svg[svg.index("<svg") :])
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{{{SVG}}}metadata", f"{{{SVG}}}style") or (
                child.tag == f"{{{SVG}}}defs" and all(c.tag == f"{{{SVG}}}style" for c in child)
            ):
                parent.remove(child)
    # matplotlib numbers its ids per chart (text_1, p1a2b...): prefixed, two charts on a page share none.
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    for element in root.iter():
        if element.get("id"):
            element.set("id", f"{name}-{element.get('id')}")
        for attribute, value in list(element.attrib.items()):
            if "url(#" in value or (attribute == f"{{{XLINK}}}href" and value.startswith("#")):
                for old in ids:
                    value = value.replace(f"#{old})", f"#{name}-{old})")
                    value = f"#{name}-{old}" if value == f"#{old}" else value
                element.set(attribute, value)
    for element in root.iter():
        element.attrib.pop("{http://www.w3.org/XML/1998/namespace}space", None)
        if f"{{{XLINK}}}href" in element.attrib:  # SVG 2's plain href: no xlink prefix to depend on
            element.set("href", element.attrib.pop(f"{{{XLINK}}}href"))
        style = element.attrib.pop("style", None)
        for declaration in (style or "").split(";"):
            prop, sep, value = declaration.partition(":")
            if sep:
                element.set(prop.strip(), FONT if prop.strip() == "font-family" else value.strip())
    # What matplotlib's one <style> rule (`*{stroke-linejoin: round; stroke-linecap: butt}`) said, inherited.
    root.set("stroke-linejoin", "round")
    root.set("stroke-linecap", "butt")
    root.set("role", "img")
    root.set("aria-labelledby", f"chart-{name}-title")
    heading = ET.Element(f"{{{SVG}}}title", {"id": f"chart-{name}-title"})
    heading.text = title
    root.insert(0, heading)
    root.set("xmlns", SVG)
    return "".join(_serialized(root))


def _serialized(element: ET.Element):
    """The tree as SVG text, written here rather than by ET.tostring: ElementTree's namespace
    prefixes come from a registry global to the process, and a library that registers a default of
    its own (WeasyPrint's PDF metadata does) turns every tag into ns0:svg, which no browser draws."""
    tag = element.tag.rpartition("}")[2]
    attributes = "".join(
        f" {name.rpartition('}')[2]}={quoteattr(value)}" for name, value in element.attrib.items()
    )
    yield f"<{tag}{attributes}>"
    yield escape(element.text or "")
    for child in element:
        yield from _serialized(child)
        yield escape(child.tail or "")
    yield f"</{tag}>"


__all__ = ["Figure", "bar_chart", "presentational", "waterfall_chart"]
