"""Charts as inline SVG text, drawn in Python: the HTML report must work offline and from a single file, so
it can load no charting library, and a chart that is already drawn needs no script to show.

Every function returns one `<svg>` element sized by its viewBox (it scales to the page width) with a
`<title>` per bar, so that hovering shows the exact figure. Labels and values arrive as text already
formatted by the caller; this module only escapes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Series", "Step", "bar_chart", "grouped_bar_chart", "waterfall_chart"]

WIDTH = 640
ROW = 26  # height of one bar row
LABEL_W = 190  # room for the labels left of the bars
VALUE_W = 110  # room for the value text right of the bars
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length (any unit, never negative) and the text shown beside it."""

    label: str
    value: float
    text: str
    colour: str = "#1c7ed6"


@dataclass(frozen=True)
class Series:
    """One colour of a grouped bar chart, with one value per group."""

    name: str
    colour: str
    values: Sequence[float]


@dataclass(frozen=True)
class Step:
    """One step of a waterfall: a signed change, or (total=True) a running total drawn from zero."""

    label: str
    value: float
    text: str
    total: bool = False


def _svg(height: float, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" role="img" '
        f'aria-label="{escape(label)}" class="chart" {FONT}>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, colour: str, title: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{h:.1f}" fill="{colour}">'
        f"<title>{escape(title)}</title></rect>"
    )


def bar_chart(bars: Sequence[Bar], label: str, scale_max: float | None = None) -> str:
    """Horizontal bars, one row each, longest = the largest value (or `scale_max`, e.g. 1.0 for shares)."""
    top = scale_max if scale_max is not None else max((b.value for b in bars), default=0.0)
    span = WIDTH - LABEL_W - VALUE_W
    body = []
    for i, bar in enumerate(bars):
        y = i * ROW + 4
        length = span * bar.value / top if top > 0 else 0.0
        body.append(_text(LABEL_W - 8, y + 14, bar.label, "end"))
        body.append(_rect(LABEL_W, y, length, ROW - 8, bar.colour, f"{bar.label}: {bar.text}"))
        body.append(_text(LABEL_W + length + 6, y + 14, bar.text))
    if not bars:
        body.append(_text(WIDTH / 2, 18, "nothing to show", "middle"))
    return _svg(max(len(bars), 1) * ROW + 8, body, label)


def grouped_bar_chart(groups: Sequence[str], series: Sequence[Series], label: str) -> str:
    """For each group (a row band), one thin bar per series, with a legend on top. Values are counts."""
    top = max((v for s in series for v in s.values), default=0.0)
    span = WIDTH - LABEL_W - VALUE_W
    bar_h = 14
    band = bar_h * len(series) + 14
    body = []
    x, y = LABEL_W, 6  # the legend wraps onto another line rather than run past the chart's width
    for s in series:
        entry = 16 + 8 * len(s.name)
        if x + entry > WIDTH and x > LABEL_W:
            x, y = LABEL_W, y + 18
        body.append(_rect(x, y, 12, 12, s.colour, s.name))
        body.append(_text(x + 16, y + 10, s.name))
        x += entry + 18
    legend_h = y + 18
    for g, name in enumerate(groups):
        y0 = legend_h + g * band
        body.append(_text(LABEL_W - 8, y0 + band / 2 + 2, name, "end", 'font-weight="600"'))
        for k, s in enumerate(series):
            value = s.values[g]
            y = y0 + 6 + k * bar_h
            length = span * value / top if top > 0 else 0.0
            body.append(_rect(LABEL_W, y, length, bar_h - 3, s.colour, f"{name}, {s.name}: {value:,.0f}"))
            body.append(_text(LABEL_W + length + 6, y + 10, f"{value:,.0f}", extra='font-size="11"'))
    if not groups:
        body.append(_text(WIDTH / 2, legend_h + 18, "nothing to show", "middle"))
    return _svg(legend_h + max(len(groups), 1) * band + 6, body, label)


def waterfall_chart(steps: Sequence[Step], label: str) -> str:
    """Vertical waterfall: each change floats from the running total; totals stand on the zero line.
    Gains are green, losses red, totals grey; the scale includes zero and every running total."""
    height, top_pad, bottom_pad = 300.0, 24.0, 56.0
    running = 0.0
    spans = []  # (start, end) of each bar in data units
    for step in steps:
        if step.total:
            spans.append((0.0, step.value))
            running = step.value
        else:
            spans.append((running, running + step.value))
            running += step.value
    low = min([0.0, *(min(s) for s in spans)])
    high = max([0.0, *(max(s) for s in spans)])
    extent = (high - low) or 1.0
    plot_h = height - top_pad - bottom_pad

    def y_of(value: float) -> float:
        return top_pad + (high - value) / extent * plot_h

    left = 16.0
    slot = (WIDTH - 2 * left) / max(len(steps), 1)
    body = [f'<line x1="{left}" x2="{WIDTH - left}" y1="{y_of(0):.1f}" y2="{y_of(0):.1f}" stroke="#868e96"/>']
    for i, (step, (start, end)) in enumerate(zip(steps, spans, strict=True)):
        colour = "#868e96" if step.total else ("#2f9e44" if step.value >= 0 else "#e03131")
        x = left + i * slot + slot * 0.15
        y_top = y_of(max(start, end))
        bar_h = max(abs(y_of(start) - y_of(end)), 1.0)
        body.append(_rect(x, y_top, slot * 0.7, bar_h, colour, f"{step.label}: {step.text}"))
        body.append(_text(x + slot * 0.35, y_top - 6, step.text, "middle", 'font-size="11"'))
        body.append(_text(x + slot * 0.35, height - bottom_pad + 18, step.label, "middle", 'font-size="11"'))
    return _svg(height, body, label)
