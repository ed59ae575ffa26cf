"""Small static SVG charts for the report: no JavaScript, no fonts or files to fetch.

Every function returns one `<svg>` element as a string. Each drawn data point (a bar,
a heat-map cell, a point of a line) has class `mark` and a `data-value`, so a test in
a browser can check that the chart drew one visible mark per value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#3b6ea8", "#e0a458", "#7fb069", "#c95d63", "#8e7cc3", "#5bb1b5", "#a0a0a0")
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"
CHAR_WIDTH = 7.2  # a rough width of one 12px character, for laying out labels

Number = float | int
Format = Callable[[Number], str]


def integer(value: Number) -> str:
    return f"{value:,.0f}"


def decimal(value: Number) -> str:
    return f"{value:,.1f}"


def percent(value: Number) -> str:
    return f"{100 * value:.0f}%"


def _nice_axis(value: Number, *, whole: bool = False) -> tuple[float, int]:
    """The end of an axis at or above value, and its number of tick steps (3 to 5):
    the tightest fit whose step is 1, 2, 2.5 or 5 times a power of ten, so every
    tick is a round number (a whole one when `whole`, for counts)."""
    if value <= 0:
        return 1.0, 4
    fits = []
    for ticks in (3, 4, 5):
        rough = value / ticks
        magnitude = 10 ** math.floor(math.log10(rough))
        for multiple in (1, 2, 2.5, 5, 10):
            step = multiple * magnitude
            if whole and (step < 1 or step != int(step)):
                continue
            if step >= rough:
                fits.append((step * ticks, ticks))
                break
    return min(fits)


def _svg(width: float, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
        f'style="{FONT};font-size:12px">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="#333"{extra}>'
        f"{escape(text)}</text>"
    )


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    parts = []
    for index, name in enumerate(names):
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
        )
        parts.append(_text(x + 14, y, name))
        x += 14 + len(name) * CHAR_WIDTH + 18
    return parts


def horizontal_bars(
    label: str,
    rows: Sequence[tuple[str, Number]],
    *,
    fmt: Format = integer,
    width: int = 570,
    color: str = PALETTE[0],
) -> str:
    """One bar per (category, value), largest first as given, value printed at its end."""
    label_chars = min(38, max((len(name) for name, _ in rows), default=1))
    left = 16 + label_chars * CHAR_WIDTH
    right = 60
    bar_height, gap, top = 18, 6, 8
    height = top + len(rows) * (bar_height + gap) + 4
    top_value = max((value for _, value in rows), default=0) or 1
    scale = (width - left - right) / top_value
    body = []
    for index, (name, value) in enumerate(rows):
        y = top + index * (bar_height + gap)
        length = max(value * scale, 1.0)
        body.append(_text(left - 6, y + 13, _clip(name, label_chars), "end"))
        body.append(
            f'<rect class="mark" data-value="{value}" x="{left:.1f}" y="{y:.1f}" '
            f'width="{length:.1f}" height="{bar_height}" fill="{color}">'
            f"<title>{escape(name)}: {escape(fmt(value))}</title></rect>"
        )
        body.append(_text(left + length + 4, y + 13, fmt(value)))
    return _svg(width, height, label, body)


def column_bars(
    label: str,
    categories: Sequence[str],
    series: dict[str, Sequence[Number]],
    *,
    fmt: Format = integer,
    width: int = 570,
    height: int = 240,
    stacked: bool = True,
    label_every: int = 1,
) -> str:
    """Vertical bars per category; several series stack (or stand side by side)."""
    left, right, top, bottom = 52, 10, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    names = list(series)
    totals = [
        sum(series[name][i] for name in names) if stacked else max(series[n][i] for n in names)
        for i in range(len(categories))
    ]
    axis = _nice_axis(max(totals, default=0), whole=fmt is integer)
    axis_max = axis[0]
    slot = plot_w / max(len(categories), 1)
    bar_w = slot * 0.8 if stacked else slot * 0.8 / max(len(names), 1)
    body = _axis(left, top, plot_w, plot_h, axis, fmt)
    for i, category in enumerate(categories):
        base = 0.0
        for s, name in enumerate(names):
            value = series[name][i]
            bar_h = value / axis_max * plot_h
            x = left + i * slot + slot * 0.1 + (0 if stacked else s * bar_w)
            y = top + plot_h - base - bar_h
            body.append(
                f'<rect class="mark" data-series="{escape(name)}" data-value="{value}" '
                f'x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(bar_h, 0.0):.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{escape(category)} {escape(name)}: {escape(fmt(value))}</title></rect>"
            )
            if stacked:
                base += bar_h
        if i % label_every == 0:
            body.append(_text(left + (i + 0.5) * slot, top + plot_h + 14, category, "middle"))
    if len(names) > 1:
        body += _legend(names, left, 14)
    return _svg(width, height, label, body)


def lines(
    label: str,
    categories: Sequence[str],
    series: dict[str, Sequence[Number | None]],
    *,
    fmt: Format = percent,
    axis_max: float | None = None,
    width: int = 570,
    height: int = 240,
    label_every: int = 7,
) -> str:
    """One line per series over the categories (a gap where a value is None)."""
    left, right, top, bottom = 52, 10, 28, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    axis = (axis_max, 4) if axis_max else _nice_axis(max(values, default=0))
    axis_max = axis[0]
    step = plot_w / max(len(categories) - 1, 1)
    body = _axis(left, top, plot_w, plot_h, axis, fmt)
    for s, (name, points) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        path, marks, pen_down = [], [], False
        for i, value in enumerate(points):
            if value is None:
                pen_down = False
                continue
            x, y = left + i * step, top + plot_h - value / axis_max * plot_h
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            marks.append(
                f'<circle class="mark" data-series="{escape(name)}" data-value="{value}" '
                f'cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                f'fill="{color}"><title>{escape(categories[i])} {escape(name)}: '
                f"{escape(fmt(value))}</title></circle>"
            )
        body.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="2"/>')
        body += marks
    for i, category in enumerate(categories):
        if i % label_every == 0:
            body.append(_text(left + i * step, top + plot_h + 14, category, "middle"))
    body += _legend(list(series), left, 14)
    return _svg(width, height, label, body)


def heatmap(
    label: str,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    values: Sequence[Sequence[Number]],
    *,
    fmt: Format = decimal,
    width: int = 760,
) -> str:
    """A grid of cells shaded from white to the palette's first colour by value."""
    left, top, bottom = 80, 6, 22
    cell_w = (width - left - 10) / max(len(column_labels), 1)
    cell_h = 22
    height = top + cell_h * len(row_labels) + bottom
    top_value = max((v for row in values for v in row), default=0) or 1
    body = []
    for r, row_label in enumerate(row_labels):
        y = top + r * cell_h
        body.append(_text(left - 6, y + 15, row_label, "end"))
        for c, value in enumerate(values[r]):
            share = value / top_value
            # From a pale blue (quiet) to the palette's blue (busiest).
            red = round(236 - share * (236 - 59))
            green = round(242 - share * (242 - 110))
            blue = round(250 - share * (250 - 168))
            body.append(
                f'<rect class="mark" data-value="{value}" x="{left + c * cell_w:.1f}" '
                f'y="{y:.1f}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                f'fill="rgb({red},{green},{blue})"><title>{escape(row_label)} '
                f"{escape(column_labels[c])}: {escape(fmt(value))}</title></rect>"
            )
    for c, column_label in enumerate(column_labels):
        if c % 2 == 0:
            x = left + (c + 0.5) * cell_w
            body.append(_text(x, top + cell_h * len(row_labels) + 15, column_label, "middle"))
    return _svg(width, height, label, body)


def _axis(
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    axis: tuple[float, int],
    fmt: Format,
) -> list[str]:
    axis_max, ticks = axis
    parts = []
    for tick in range(ticks + 1):
        value = axis_max * tick / ticks
        y = top + plot_h - plot_h * tick / ticks
        parts.append(
            f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e3e3e3"/>'
        )
        parts.append(_text(left - 6, y + 4, fmt(value), "end"))
    parts.append(
        f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{top + plot_h:.1f}" '
        f'y2="{top + plot_h:.1f}" stroke="#999"/>'
    )
    return parts


def empty(label: str, width: int = 570) -> str:
    """A chart with no rows to draw: says so, and has no marks."""
    return _svg(width, 60, label, [_text(width / 2, 34, "no rows to show", "middle")])
