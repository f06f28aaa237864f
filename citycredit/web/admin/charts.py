"""Small server-side charts as inline SVG: a bar chart, a stacked bar chart and a horizontal bar chart.

Each chart scales to its container (``viewBox``, no fixed width) and is drawn on a 320-unit-wide canvas,
about the width it gets on a 360 px phone, so its text is drawn there at nearly its nominal size. It is an image with a ``<title>`` and ``<desc>`` for
assistive technology, and every bar carries a ``<title>`` (its label and value) shown on hover. Callers
give already translated text; the page shows the same figures as a table beside each chart.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 320
FONT = 14
SMALL = 12
BAR_COLOUR = "#2f6fbf"
AXIS_COLOUR = "#52606d"
GRID_COLOUR = "#e4e7eb"
TEXT_COLOUR = "#1f2933"
# Distinct hues, each at least 3:1 against white (WCAG non-text contrast).
PALETTE = (
    "#0072b2",
    "#d55e00",
    "#007a5a",
    "#b8487f",
    "#6a3d9a",
    "#8a5a00",
    "#00798c",
    "#4d4d4d",
    "#c0392b",
)

_ids = itertools.count(1)


@dataclass(frozen=True)
class Bar:
    label: str  # short, under the bar
    value: int
    title: str  # full text of the bar's tooltip, e.g. "AAA级（诚信模范）：12"


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[int]  # one per x position


def _nice_ticks(top: int, most: int = 5) -> list[int]:
    """0 and round steps (1, 2, 5 × 10ⁿ) up to at least ``top``."""
    if top <= 0:
        return [0, 1]
    raw = top / most
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    return list(range(0, top + step, step)) if top % step else list(range(0, top + 1, step))


def _fit(text: str, room: float, size: int = FONT) -> str:
    """``text`` cut (with …) to about ``room`` units: CJK glyphs are 1 em wide, Latin about half."""

    def width(part: str) -> float:
        return sum(size if ord(ch) > 0x2E80 else size * 0.58 for ch in part)

    if width(text) <= room:
        return text
    while text and width(text + "…") > room:
        text = text[:-1]
    return text + "…"


def _text(x: float, y: float, content: str, *, anchor: str = "middle", size: int = FONT) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{TEXT_COLOUR}">{escape(content)}</text>'
    )


def _frame(title: str, desc: str, height: float, body: list[str]) -> Markup:
    n = next(_ids)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-labelledby="chart{n}-title chart{n}-desc" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, sans-serif">'
        f'<title id="chart{n}-title">{escape(title)}</title>'
        f'<desc id="chart{n}-desc">{escape(desc)}</desc>' + "".join(body) + "</svg>"
    )


def _y_axis(ticks: list[int], left: float, top: float, plot_h: float, y_label: str) -> list[str]:
    out = []
    for tick in ticks:
        y = top + plot_h - plot_h * tick / ticks[-1]
        out.append(
            f'<line x1="{left}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>'
        )
        out.append(_text(left - 4, y + 4, f"{tick:,}", anchor="end", size=SMALL))
    out.append(_text(4, top - 14, y_label, anchor="start", size=SMALL))
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{AXIS_COLOUR}"/>'
    )
    out.append(
        f'<line x1="{left}" x2="{WIDTH - 8}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{AXIS_COLOUR}"/>'
    )
    return out


def _empty(title: str, desc: str, message: str) -> Markup:
    return _frame(title, desc, 80, [_text(WIDTH / 2, 45, message)])


def bar_chart(
    bars: Sequence[Bar], *, title: str, desc: str, y_label: str, empty: str = "—"
) -> Markup:
    """Vertical bars with a labelled y axis and the value above each bar."""
    if not bars:
        return _empty(title, desc, empty)
    left, top, plot_h = 44.0, 40.0, 180.0
    ticks = _nice_ticks(max(b.value for b in bars))
    slot = (WIDTH - 8 - left) / len(bars)
    body = _y_axis(ticks, left, top, plot_h, y_label)
    for i, bar in enumerate(bars):
        h = plot_h * bar.value / ticks[-1]
        x = left + i * slot + slot * 0.15
        y = top + plot_h - h
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{BAR_COLOUR}"><title>{escape(bar.title)}</title></rect>'
        )
        body.append(_text(x + slot * 0.35, y - 4, f"{bar.value:,}", size=SMALL))
        body.append(_text(x + slot * 0.35, top + plot_h + 18, bar.label))
    return _frame(title, desc, top + plot_h + 30, body)


def stacked_bar_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    desc: str,
    y_label: str,
    label_every: int = 7,
    empty: str = "—",
) -> Markup:
    """One stacked bar per x position (e.g. day), one coloured segment per series, and a legend."""
    totals = [sum(s.values[i] for s in series) for i in range(len(x_labels))]
    if not x_labels or not series or not any(totals):
        return _empty(title, desc, empty)
    left, top, plot_h = 44.0, 40.0, 180.0
    ticks = _nice_ticks(max(totals))
    slot = (WIDTH - 8 - left) / len(x_labels)
    body = _y_axis(ticks, left, top, plot_h, y_label)
    for i, label in enumerate(x_labels):
        x = left + i * slot + slot * 0.1
        base = top + plot_h
        for s in series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / ticks[-1]
            base -= h
            body.append(
                f'<rect class="segment" x="{x:.1f}" y="{base:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{s.colour}" stroke="#fff" stroke-width="0.5">'
                f"<title>{escape(label)} {escape(s.name)}: {value:,}</title></rect>"
            )
        # Counted back from the last position, so the latest day is always labelled.
        back = len(x_labels) - 1 - i
        if back % label_every == 0:
            anchor = "end" if back == 0 else "middle"
            lx = x + slot * (0.8 if back == 0 else 0.4)
            body.append(_text(lx, top + plot_h + 18, label, anchor=anchor, size=SMALL))
    legend_top = top + plot_h + 34
    # Two columns when every name fits in one, else one column: a legend is never cut short.
    columns = 2 if all(_fit(s.name, WIDTH / 2 - 24) == s.name for s in series) else 1
    for n, s in enumerate(series):
        lx = 8 + (n % columns) * (WIDTH / 2)
        ly = legend_top + (n // columns) * 20
        body.append(f'<rect x="{lx:.1f}" y="{ly:.1f}" width="12" height="12" fill="{s.colour}"/>')
        body.append(_text(lx + 18, ly + 11, _fit(s.name, WIDTH - 32), anchor="start"))
    height = legend_top + math.ceil(len(series) / columns) * 20 + 4
    return _frame(title, desc, height, body)


def horizontal_bar_chart(bars: Sequence[Bar], *, title: str, desc: str, empty: str = "—") -> Markup:
    """One row per bar: its label above it and its value after it (long names fit narrow screens)."""
    if not bars:
        return _empty(title, desc, empty)
    top, row = 8.0, 40.0
    top_value = max(max(b.value for b in bars), 1)
    span = WIDTH - 8 - 8 - 48  # room for the value after the longest bar
    body = []
    for i, bar in enumerate(bars):
        y = top + i * row
        body.append(_text(8, y + 13, _fit(bar.label, WIDTH - 16), anchor="start"))
        w = max(span * bar.value / top_value, 1.0)
        body.append(
            f'<rect class="bar" x="8" y="{y + 18:.1f}" width="{w:.1f}" height="14" '
            f'fill="{BAR_COLOUR}"><title>{escape(bar.title)}</title></rect>'
        )
        body.append(_text(8 + w + 4, y + 30, f"{bar.value:,}", anchor="start", size=12))
    return _frame(title, desc, top + len(bars) * row + 4, body)


def percent_line_chart(
    x_labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    desc: str,
    y_label: str,
    target: float | None = None,
    target_label: str = "",
    label_every: int = 7,
    empty: str = "—",
) -> Markup:
    """A rate per x position (0–1, drawn 0–100%) as dots joined by a line, broken where a position
    has no value (nothing to measure that day); ``target`` as a dashed line named in the legend."""
    if not x_labels or all(v is None for v in values):
        return _empty(title, desc, empty)
    left, top, plot_h = 44.0, 40.0, 180.0
    ticks = [0, 25, 50, 75, 100]
    body = []
    for tick in ticks:
        y = top + plot_h - plot_h * tick / 100
        body.append(
            f'<line x1="{left}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>'
        )
        body.append(_text(left - 4, y + 4, f"{tick}%", anchor="end", size=SMALL))
    body.append(_text(4, top - 14, y_label, anchor="start", size=SMALL))
    body.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{AXIS_COLOUR}"/>'
    )
    body.append(
        f'<line x1="{left}" x2="{WIDTH - 8}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{AXIS_COLOUR}"/>'
    )
    slot = (WIDTH - 8 - left) / len(x_labels)

    def y_of(value: float) -> float:
        return top + plot_h - plot_h * max(0.0, min(value, 1.0))

    if target is not None:
        ty = y_of(target)
        body.append(
            f'<line class="target" x1="{left}" x2="{WIDTH - 8}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{PALETTE[1]}" stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
    runs: list[list[tuple[float, float]]] = [[]]
    for i, (label, value) in enumerate(zip(x_labels, values, strict=True)):
        x = left + i * slot + slot / 2
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y_of(value)))
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y_of(value):.1f}" r="2.5" '
                f'fill="{BAR_COLOUR}"><title>{escape(label)}: {value * 100:.1f}%</title></circle>'
            )
        back = len(x_labels) - 1 - i
        if back % label_every == 0:
            anchor = "end" if back == 0 else "middle"
            lx = x + (slot / 2 if back == 0 else 0)
            body.append(_text(lx, top + plot_h + 18, label, anchor=anchor, size=SMALL))
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            body.append(
                f'<polyline points="{points}" fill="none" stroke="{BAR_COLOUR}" '
                f'stroke-width="1.5"/>'
            )
    legend_top = top + plot_h + 34
    body.append(
        f'<line x1="8" x2="20" y1="{legend_top + 6:.1f}" y2="{legend_top + 6:.1f}" '
        f'stroke="{BAR_COLOUR}" stroke-width="2"/>'
    )
    body.append(_text(26, legend_top + 11, _fit(y_label, WIDTH - 40), anchor="start"))
    height = legend_top + 20
    if target is not None:
        body.append(
            f'<line x1="8" x2="20" y1="{legend_top + 26:.1f}" y2="{legend_top + 26:.1f}" '
            f'stroke="{PALETTE[1]}" stroke-width="2" stroke-dasharray="5 3"/>'
        )
        body.append(_text(26, legend_top + 31, _fit(target_label, WIDTH - 40), anchor="start"))
        height += 20
    return _frame(title, desc, height + 4, body)
