"""Server-rendered SVG bar charts: no script, no inline style, readable without colour.

The CSP forbids inline styles, so the chart uses SVG presentation attributes (which are not
styles) and classes that ``static/css/admin.css`` colours. Every chart is ``role="img"`` with a
``<title>`` and ``<desc>``; the page puts the same numbers in a table for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

ROW = 28
BAR = 18
LABEL_WIDTH = 220
BAR_WIDTH = 340
VALUE_WIDTH = 70
MAX_LABEL = 30


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"


def bar_chart(
    chart_id: str, title: str, rows: Sequence[tuple[str, float]], unit: str = ""
) -> Markup:
    """A horizontal bar chart of (label, value) rows, scaled to the largest value."""
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    height = max(1, len(rows)) * ROW + 8
    biggest = max((v for _l, v in rows), default=0) or 1
    desc = (f"Bar chart with {len(rows)} bars; the same figures are in the table that follows."
            if rows else "No data for this period.")
    cid = escape(chart_id)
    parts = [
        f'<svg class="chart" id="{cid}" role="img" aria-labelledby="{cid}-title {cid}-desc" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" focusable="false">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{LABEL_WIDTH}" y1="0" x2="{LABEL_WIDTH}" y2="{height}" '
        'stroke="#333333" stroke-width="1"/>',
    ]
    for i, (label, value) in enumerate(rows):
        y = i * ROW + 4
        bar_len = 0 if value <= 0 else max(1.0, BAR_WIDTH * value / biggest)
        text_y = y + BAR - 4
        shown = f"{value:g}{unit}"
        parts.append(
            f'<g class="row"><text class="label" x="{LABEL_WIDTH - 8}" y="{text_y}" '
            f'text-anchor="end" fill="#1a1a1a">{escape(_short(label))}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{bar_len:.1f}" '
            f'height="{BAR}" fill="#1d5e8c"/>'
            f'<text class="value" x="{LABEL_WIDTH + bar_len + 6:.1f}" y="{text_y}" '
            f'fill="#1a1a1a">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every interpolated value is escaped above)
