"""Two small inline-SVG charts for the phone page: a score trend line and signed dimension bars.

Drawn on a 320-unit-wide canvas (about a 360 px phone's width) and scaled by ``viewBox``, so the text
stays legible. Each chart is a figure: a visible caption (its title, real text that grows with the
reader's text size), then an image named by that caption and described by ``desc``, with a labelled
value axis on round ticks. The page shows the same figures as text beside it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 320
FONT = 13
SMALL = 11
LINE = "#1d4ed8"
POSITIVE = "#047857"
NEGATIVE = "#b91c1c"
AXIS = "#52606d"
GRID = "#e4e7eb"
TEXT = "#1f2933"
# A score's axis spans at least this many points, so a change of a few points does not look like a
# cliff (ticks then fall on round 50s or 100s).
SCORE_SPAN = 100
_ids = itertools.count(1)


def nice_ticks(low: int, high: int, *, intervals: int = 4, min_span: int = 1) -> list[int]:
    """Round ticks (1, 2 or 5 × 10ⁿ apart) from at or below ``low`` to at or above ``high``, in at
    most ``intervals`` steps; a range narrower than ``min_span`` is widened around its middle."""
    low, high = min(low, high), max(low, high)
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = math.floor(middle - min_span / 2), math.ceil(middle + min_span / 2)
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            first = math.floor(low / step) * step
            last = math.ceil(high / step) * step
            if (last - first) // step <= intervals:
                return list(range(first, last + 1, step))
        magnitude *= 10


def _text(x: float, y: float, content: str, *, anchor: str = "middle", size: int = FONT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{TEXT}">{escape(content)}</text>'
    )


def _frame(title: str, desc: str, height: float, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<figure class="chart-figure"><figcaption class="chart-title" id="czchart{n}-t">'
        f"{escape(title)}</figcaption>"
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="czchart{n}-t czchart{n}-d" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif"><title>{escape(title)}</title>'
        f'<desc id="czchart{n}-d">{escape(desc)}</desc>' + "".join(body) + "</svg></figure>"
    )


def line_chart(points: Sequence[tuple[str, int]], *, title: str, desc: str, y_label: str) -> Markup:
    """Values over time; the y axis spans the data on round ticks (a score moves in a narrow band)."""
    if not points:
        return _frame(title, desc, 60, [_text(WIDTH / 2, 35, "—")])
    left, right, top, height = 44.0, WIDTH - 10.0, 28.0, 130.0
    values = [v for _, v in points]
    ticks = nice_ticks(min(values), max(values), min_span=SCORE_SPAN)
    low, high = ticks[0], ticks[-1]
    step = (right - left) / max(len(points) - 1, 1)

    def y(value: int) -> float:
        return top + height - height * (value - low) / (high - low)

    body = [_text(4, top - 14, y_label, anchor="start", size=SMALL)]
    for tick in ticks:
        body.append(
            f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
        )
        body.append(_text(left - 4, y(tick) + 4, str(tick), anchor="end", size=SMALL))
    body.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + height}" stroke="{AXIS}"/>')
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
            body.append(_text(left + i * step, top + height + 18, label, anchor=anchor, size=SMALL))
    body.append(_text(coords[-1][0], coords[-1][1] - 8, str(values[-1]), anchor="end"))
    return _frame(title, desc, top + height + 26, body)


def signed_bars(
    rows: Sequence[tuple[str, int]], *, title: str, desc: str, value_label: str
) -> Markup:
    """One row per dimension: its name, then a bar right (adds) or left (takes away) of zero, on a
    value axis with round ticks below."""
    if not rows:
        return _frame(title, desc, 60, [_text(WIDTH / 2, 35, "—")])
    row_h, top = 42.0, 6.0
    values = [v for _, v in rows]
    ticks = nice_ticks(min(0, *values), max(0, *values, 1))
    # Room for a value's label beside the longest bar on either side.
    left = 44.0 if ticks[0] < 0 else 10.0
    right = WIDTH - 44.0

    def x(value: int) -> float:
        return left + (right - left) * (value - ticks[0]) / (ticks[-1] - ticks[0])

    zero = x(0)
    bottom = top + len(rows) * row_h
    body = []
    for tick in ticks:
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + 18}" y2="{bottom}" '
            f'stroke="{GRID}"/>'
        )
        body.append(_text(x(tick), bottom + 14, f"{tick:+d}" if tick else "0", size=SMALL))
    for i, (label, value) in enumerate(rows):
        y0 = top + i * row_h
        body.append(_text(10, y0 + 14, label, anchor="start"))
        start, end = sorted((zero, x(value)))
        colour = POSITIVE if value >= 0 else NEGATIVE
        body.append(
            f'<rect x="{start:.1f}" y="{y0 + 20:.1f}" width="{max(end - start, 1):.1f}" '
            f'height="14" fill="{colour}"><title>{escape(label)}: {value:+d}</title></rect>'
        )
        after = end + 4 if value >= 0 else start - 4
        body.append(
            _text(after, y0 + 32, f"{value:+d}", anchor="start" if value >= 0 else "end", size=12)
        )
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top + 18}" y2="{bottom}" stroke="{AXIS}"/>'
    )
    body.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="{AXIS}"/>')
    body.append(_text(right, bottom + 30, value_label, anchor="end", size=SMALL))
    return _frame(title, desc, bottom + 36, body)
