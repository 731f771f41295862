"""Charts drawn on the server as inline SVG: bars, a line, grouped bars. No script and nothing fetched, so they show
behind any firewall and print as they look. Each is an image with its summary for screen readers (role="img",
aria-label and <title>); the page puts the same numbers in a table beside it (partials/chart.html).

Pure functions: labels, names and numbers in, escaped markup out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 40  # room for the value axis' labels and the category labels
MOST_LABELS = 13  # category labels drawn at most; the table names every one
Value = int | float | Decimal | str | None  # a str such as "<5" or "x" is a count hidden from the reader


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Value]


@dataclass(frozen=True)
class Chart:
    """A chart and its numbers: what partials/chart.html shows (the SVG, then a table of `labels` × `series`)."""

    key: str  # the figure's id on the page
    title: str
    label_header: str  # the table's first column: week, kind of aid…
    labels: Sequence[str]
    series: Sequence[Series]
    svg: Markup

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        return [(label, [shown(s.values[i]) for s in self.series]) for i, label in enumerate(self.labels)]


def number(value: Value) -> float | None:
    """The value to draw, or None for one that is hidden or missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        found = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return found if math.isfinite(found) else None


def shown(value: Value) -> str:
    """A value as a page writes it: thousands apart, yuan with their cents, a hidden count as it came."""
    if value is None:
        return ""
    drawn = number(value)
    if drawn is None:
        return str(value)
    if drawn.is_integer() and not (isinstance(value, str | Decimal) and "." in str(value)):
        return f"{int(drawn):,}"
    return f"{drawn:,.2f}"


def ticks(top: float, count: int = 4) -> list[float]:
    """The value axis from 0 to at least `top`, in about `count` steps of 1, 2 or 5 times a power of ten (at least
    1: counts and yuan have no fractions worth a line)."""
    top = max(top, 0.0) or 1.0
    rough = top / count
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    step = max(step, 1.0)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def bar_chart(labels: Sequence[str], values: Sequence[Value], *, summary: str, empty: str = "") -> Markup:
    return grouped_bars(labels, [Series("", values)], summary=summary, empty=empty, legend=False)


def grouped_bars(
    labels: Sequence[str], series: Sequence[Series], *, summary: str, empty: str = "", legend: bool = True
) -> Markup:
    """A bar per label and series, the series side by side within a label's band."""
    plot = _Plot(labels, series)
    band = plot.band
    inner = band * 0.8 / max(len(series), 1)
    parts = plot.frame(summary, empty)
    for index, one in enumerate(series):
        parts.append(f'<g class="bars series-{index}">')
        for position, (label, value) in enumerate(zip(labels, one.values, strict=True)):
            drawn = number(value)
            if drawn is None:
                continue
            x = LEFT + position * band + band * 0.1 + index * inner
            y = plot.y(drawn)
            tip = f"{label}: {shown(value)}" if not one.name else f"{one.name}, {label}: {shown(value)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(inner - 1, 1):.1f}" height="{plot.y(0) - y:.1f}">'
                f"<title>{escape(tip)}</title></rect>"
            )
        parts.append("</g>")
    if legend and len(series) > 1:
        parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape)


def line_chart(labels: Sequence[str], values: Sequence[Value], *, summary: str, empty: str = "") -> Markup:
    """A line through the values (a running total, say), a dot on each."""
    plot = _Plot(labels, [Series("", values)])
    parts = plot.frame(summary, empty)
    points = [
        (LEFT + (i + 0.5) * plot.band, plot.y(drawn), label, value)
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
        if (drawn := number(value)) is not None
    ]
    parts.append('<g class="line series-0">')
    if points:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
        parts.append(f'<polyline fill="none" points="{path}"/>')
    for x, y, label, value in points:
        tip = escape(f"{label}: {shown(value)}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{tip}</title></circle>')
    parts.append("</g></svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape)


class _Plot:
    """The frame every chart shares: the value axis with its lines, the category labels, the summary."""

    def __init__(self, labels: Sequence[str], series: Sequence[Series]) -> None:
        self.labels = labels
        drawn = [n for one in series for v in one.values if (n := number(v)) is not None]
        self.ticks = ticks(max(drawn, default=0.0))
        self.band = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / self.ticks[-1])

    def frame(self, summary: str, empty: str) -> list[str]:
        said = escape(summary)
        parts = [
            f'<svg class="chart-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{said}" focusable="false"><title>{said}</title>',
            '<g class="grid">',
        ]
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(shown(tick))}</text>'
            )
        parts.append('</g><g class="labels">')
        every = math.ceil(len(self.labels) / MOST_LABELS) or 1
        for position, label in enumerate(self.labels):
            if position % every == 0:
                x = LEFT + (position + 0.5) * self.band
                parts.append(
                    f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(label)}</text>'
                )
        parts.append("</g>")
        if not self.labels and empty:
            parts.append(
                f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(empty)}</text>'
            )
        return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts = ['<g class="legend">']
    x = LEFT
    for index, one in enumerate(series):
        parts.append(
            f'<rect class="key series-{index}" x="{x}" y="2" width="12" height="12"/>'
            f'<text x="{x + 16}" y="12">{escape(one.name)}</text>'
        )
        x += 24 + 14 * len(one.name) + 8
    parts.append("</g>")
    return parts
