"""The console's charts (services/console/charts.py): scales that start at 0 and end on a round number, bars and
lines where the numbers put them, empty and hidden values drawn as nothing, every text escaped, an image with its
summary for screen readers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from markupsafe import Markup

from services.console import charts
from services.console.charts import Chart, Series

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    """The chart as XML: it must be well formed whatever its labels held."""
    return ET.fromstring(str(markup))  # noqa: S314 (our own markup, parsed to check it)


def bars(svg: ET.Element, series: int = 0) -> list[ET.Element]:
    group = svg.find(f"{SVG}g[@class='bars series-{series}']")
    assert group is not None
    return group.findall(f"{SVG}rect")


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (4, [0, 1, 2, 3, 4]),
        (7, [0, 2, 4, 6, 8]),
        (10, [0, 5, 10]),
        (11, [0, 5, 10, 15]),
        (100, [0, 50, 100]),
        (551, [0, 200, 400, 600]),
        (18_181.82, [0, 5_000, 10_000, 15_000, 20_000]),
        (-3, [0, 1]),
    ],
)
def test_the_value_axis_starts_at_0_and_ends_on_a_round_step_at_or_above_the_top(
    top: float, expected: list[int]
) -> None:
    assert charts.ticks(top) == expected


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (551, "551"),
        (12_345, "12,345"),
        ("18181.82", "18,181.82"),
        (Decimal("100.00"), "100.00"),
        (5000.0, "5,000"),
        ("<5", "<5"),
        ("x", "x"),
        (None, ""),
    ],
)
def test_numbers_are_written_with_thousands_and_cents_and_hidden_counts_as_they_came(
    value: charts.Value, written: str
) -> None:
    assert charts.shown(value) == written


def test_bars_stand_on_the_axis_as_high_as_their_values() -> None:
    svg = parsed(charts.bar_chart(["03-04", "03-11", "03-18"], [2, 0, 8], summary="Visits per week"))
    heights = [float(rect.get("height", "")) for rect in bars(svg)]
    assert heights[1] == 0
    assert heights[2] == pytest.approx(4 * heights[0])
    assert heights[2] == pytest.approx(charts.HEIGHT - charts.TOP - charts.BOTTOM)  # 8 is the axis' top
    bottoms = {round(float(r.get("y", "")) + float(r.get("height", "")), 1) for r in bars(svg)}
    assert len(bottoms) == 1  # all on the zero line
    tips = [rect.findtext(f"{SVG}title") for rect in bars(svg)]
    assert tips == ["03-04: 2", "03-11: 0", "03-18: 8"]
    axis = [text.text for text in svg.findall(f"{SVG}g[@class='grid']/{SVG}text")]
    assert axis == ["0", "2", "4", "6", "8"]


def test_a_chart_is_an_image_whose_summary_a_screen_reader_reads() -> None:
    svg = parsed(charts.line_chart(["a", "b"], [1, 3], summary="Pairings: 1 then 3"))
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == "Pairings: 1 then 3"
    assert svg.findtext(f"{SVG}title") == "Pairings: 1 then 3"


def test_a_line_goes_through_each_value_left_to_right() -> None:
    svg = parsed(charts.line_chart(["w1", "w2", "w3"], [0, 5, 10], summary="Running total"))
    line = svg.find(f".//{SVG}polyline")
    assert line is not None
    points = [tuple(map(float, point.split(","))) for point in line.get("points", "").split()]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert xs == sorted(xs)
    assert ys[0] > ys[1] > ys[2]  # higher values higher up
    assert ys[0] == pytest.approx(charts.HEIGHT - charts.BOTTOM)
    assert len(svg.findall(f".//{SVG}circle")) == 3


def test_grouped_bars_put_each_series_in_its_own_colour_with_a_legend() -> None:
    posted, fulfilled = Series("Posted", [3, 4]), Series("Fulfilled", [1, 4])
    svg = parsed(charts.grouped_bars(["03-04", "03-11"], [posted, fulfilled], summary="Wishes"))
    assert len(bars(svg, 0)) == len(bars(svg, 1)) == 2
    first, second = bars(svg, 0)[0], bars(svg, 1)[0]
    assert float(second.get("x", "")) > float(first.get("x", ""))  # side by side within the week
    assert [t.text for t in svg.findall(f"{SVG}g[@class='legend']/{SVG}text")] == ["Posted", "Fulfilled"]
    assert second.findtext(f"{SVG}title") == "Fulfilled, 03-04: 1"


def test_an_empty_chart_has_an_axis_no_bars_and_says_so() -> None:
    svg = parsed(charts.bar_chart([], [], summary="Aid by kind", empty="No aid yet"))
    assert bars(svg) == []
    assert [t.text for t in svg.findall(f"{SVG}g[@class='grid']/{SVG}text")] == ["0", "1"]
    assert "No aid yet" in [t.text for t in svg.iter(f"{SVG}text")]
    line = parsed(charts.line_chart([], [], summary="Nothing yet"))
    assert line.find(f".//{SVG}polyline") is None


def test_hidden_and_missing_values_are_drawn_as_nothing_and_shown_as_they_came() -> None:
    values: list[charts.Value] = ["<5", 12, None, "x"]
    svg = parsed(charts.bar_chart(["a", "b", "c", "d"], values, summary="Donor's view"))
    assert [rect.findtext(f"{SVG}title") for rect in bars(svg)] == ["b: 12"]
    chart = Chart("k", "t", "Week", ["a", "b", "c", "d"], [Series("Visits", values)], Markup(""))
    assert chart.rows == [("a", ["<5"]), ("b", ["12"]), ("c", [""]), ("d", ["x"])]


def test_every_label_name_and_summary_is_escaped() -> None:
    hostile = '<script>alert("x")</script>&"\''
    markup = str(
        charts.grouped_bars(
            [hostile, "b"], [Series(hostile, [1, 2]), Series("ok", [2, 1])], summary=hostile, empty=hostile
        )
    )
    markup += str(charts.line_chart([hostile], [1], summary=hostile))
    assert "<script>" not in markup
    assert not re.search(r'="[^"]*"[^ />]', markup)  # no attribute broken out of its quotes
    for svg in re.findall(r"<svg.*?</svg>", markup, flags=re.S):
        found = parsed(svg)
        assert found.get("aria-label") == hostile  # read back as it was given, once unescaped
        assert found.findtext(f"{SVG}title") == hostile


def test_many_weeks_label_only_every_few_weeks_so_labels_never_overlap() -> None:
    labels = [f"w{n}" for n in range(104)]
    svg = parsed(charts.bar_chart(labels, list(range(104)), summary="Two years"))
    drawn = [t.text for t in svg.findall(f"{SVG}g[@class='labels']/{SVG}text")]
    assert len(drawn) <= charts.MOST_LABELS
    assert drawn[0] == "w0"
    assert len(bars(svg)) == 104
