"""Two small inline-SVG charts for the phone page: a score trend line and signed dimension bars.

Drawn on a 320-unit-wide canvas (about a 360 px phone's width) and scaled by ``viewBox``, so the text
stays legible; each chart is an image with a title and description, and the page shows its figures as
text beside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 320
FONT = 13
LINE = "#1d4ed8"
POSITIVE = "#047857"
NEGATIVE = "#b91c1c"
AXIS = "#52606d"
GRID = "#e4e7eb"
TEXT = "#1f2933"
_ids = itertools.count(1)


def _text(x: float, y: float, content: str, *, anchor: str = "middle", size: int = FONT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{TEXT}">{escape(content)}</text>'
    )


def _frame(title: str, desc: str, height: float, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="czchart{n}-t czchart{n}-d" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif"><title id="czchart{n}-t">{escape(title)}</title>'
        f'<desc id="czchart{n}-d">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def line_chart(points: Sequence[tuple[str, int]], *, title: str, desc: str) -> Markup:
    """Values over time; the y axis spans the data (a credit score moves in a narrow band)."""
    if not points:
        return _frame(title, desc, 60, [_text(WIDTH / 2, 35, "—")])
    left, right, top, height = 44.0, WIDTH - 10.0, 14.0, 140.0
    values = [v for _, v in points]
    low, high = min(values), max(values)
    pad = max(10, (high - low) // 5)
    low, high = low - pad, high + pad
    step = (right - left) / max(len(points) - 1, 1)

    def y(value: int) -> float:
        return top + height - height * (value - low) / (high - low)

    body = []
    for tick in (low, (low + high) // 2, high):
        body.append(
            f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
        )
        body.append(_text(left - 4, y(tick) + 4, str(tick), anchor="end", size=11))
    coords = [(left + i * step, y(v)) for i, v in enumerate(values)]
    body.append(
        f'<polyline fill="none" stroke="{LINE}" stroke-width="2.5" points="'
        + " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
        + '"/>'
    )
    for (label, value), (x, yy) in zip(points, coords, strict=True):
        body.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="3.5" fill="{LINE}">'
            f"<title>{escape(label)}: {value}</title></circle>"
        )
    last = len(points) - 1
    for i, (label, _) in enumerate(points):
        if (last - i) % 3 == 0:  # every third month, counting back from the latest
            anchor = "end" if i == last else ("start" if i == 0 else "middle")
            body.append(_text(left + i * step, top + height + 18, label, anchor=anchor, size=11))
    body.append(_text(coords[-1][0], coords[-1][1] - 8, str(values[-1]), anchor="end"))
    return _frame(title, desc, top + height + 26, body)


def signed_bars(rows: Sequence[tuple[str, int]], *, title: str, desc: str) -> Markup:
    """One row per dimension: its name, then a bar right (adds) or left (takes away) of zero."""
    if not rows:
        return _frame(title, desc, 60, [_text(WIDTH / 2, 35, "—")])
    row_h, top = 42.0, 6.0
    biggest = max(max(abs(v) for _, v in rows), 1)
    has_negative = any(v < 0 for _, v in rows)
    zero = WIDTH / 2 if has_negative else 10.0
    span = (WIDTH / 2 - 50) if has_negative else WIDTH - 70.0
    body = []
    for i, (label, value) in enumerate(rows):
        y0 = top + i * row_h
        body.append(_text(10, y0 + 14, label, anchor="start"))
        width = span * abs(value) / biggest
        x = zero if value >= 0 else zero - width
        colour = POSITIVE if value >= 0 else NEGATIVE
        body.append(
            f'<rect x="{x:.1f}" y="{y0 + 20:.1f}" width="{max(width, 1):.1f}" height="14" '
            f'fill="{colour}"><title>{escape(label)}: {value:+d}</title></rect>'
        )
        after = x + width + 4 if value >= 0 else x - 4
        body.append(
            _text(after, y0 + 32, f"{value:+d}", anchor="start" if value >= 0 else "end", size=12)
        )
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top + 18}" '
        f'y2="{top + len(rows) * row_h}" stroke="{AXIS}"/>'
    )
    return _frame(title, desc, top + len(rows) * row_h + 4, body)
