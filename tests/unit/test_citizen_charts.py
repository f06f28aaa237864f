"""The phone page's charts: round ticks, a visible title, a labelled value axis, a text alternative."""

from __future__ import annotations

import itertools
import re

import pytest

from citycredit.web.citizen.charts import line_chart, nice_ticks, signed_bars


@pytest.mark.parametrize(
    ("low", "high", "options", "expected"),
    [
        (995, 1010, {"min_span": 100}, [950, 1000, 1050, 1100]),  # a score that moved 15 points
        (1000, 1000, {"min_span": 100}, [950, 1000, 1050]),  # a flat line sits mid-chart
        (612, 905, {"min_span": 100}, [600, 700, 800, 900, 1000]),
        (0, 1300, {}, [0, 500, 1000, 1500]),
        (-5, 10, {}, [-5, 0, 5, 10]),
        (-120, 40, {}, [-150, -100, -50, 0, 50]),
        (0, 1, {}, [0, 1]),
        (0, 7, {}, [0, 2, 4, 6, 8]),
    ],
)
def test_ticks_are_round_and_cover_the_data(
    low: int, high: int, options: dict[str, int], expected: list[int]
) -> None:
    ticks = nice_ticks(low, high, **options)
    assert ticks == expected
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 5
    steps = {b - a for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and re.fullmatch(r"[125]0*", str(steps.pop()))


def tick_labels(svg: str) -> list[str]:
    return re.findall(r'font-size="11" fill="#1f2933">([-+]?\d+)</text>', svg)


def test_the_trend_has_a_title_a_y_axis_label_and_round_ticks() -> None:
    months = [(f"26-{m:02d}", score) for m, score in enumerate((1010, 1010, 995, 1005), start=3)]
    chart = str(line_chart(months, title="近12个月信用分走势", desc="按现行规则", y_label="信用分"))
    caption = re.search(
        r'<figcaption class="chart-title" id="(czchart\d+-t)">(.*?)</figcaption>', chart
    )
    assert caption and caption.group(2) == "近12个月信用分走势"
    # The image is named by the visible caption and described by its desc.
    assert f'role="img" aria-labelledby="{caption.group(1)} ' in chart and "<desc id=" in chart
    assert ">信用分</text>" in chart
    assert tick_labels(chart)[:4] == ["950", "1000", "1050", "1100"]
    assert chart.count("<circle") == 4 and "<title>26-05: 995</title>" in chart


def test_the_dimension_bars_have_a_title_a_value_axis_label_and_round_ticks() -> None:
    chart = str(
        signed_bars(
            [("好", 10), ("差", -5), ("法院", 0)],
            title="各维度得分",
            desc="每个维度对信用分的贡献",
            value_label="加减分",
        )
    )
    assert re.search(
        r'<figcaption class="chart-title" id="czchart\d+-t">各维度得分</figcaption>', chart
    )
    assert ">加减分</text>" in chart
    assert tick_labels(chart) == ["-5", "0", "+5", "+10"]
    for name, value in (("好", "+10"), ("差", "-5"), ("法院", "+0")):
        assert f"<title>{name}: {value}</title>" in chart


def test_an_empty_chart_still_has_its_title() -> None:
    chart = str(line_chart([], title="走势", desc="无数据", y_label="信用分"))
    assert '<figcaption class="chart-title"' in chart and ">—</text>" in chart
