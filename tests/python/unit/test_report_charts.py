"""The report's SVG charts (src/sparkify/report/svg_charts.py), drawn from plain
numbers: well-formed SVG, one mark per value carrying that value, sizes in
proportion, round axes. No server: operations/test_report_page.py looks at the same charts in a
browser, over a built warehouse.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from sparkify.report import svg_charts as charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything not well-formed
    assert root.tag == f"{SVG}svg"
    return root


def marks(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter() if element.get("class") == "mark"]


def test_horizontal_bars_draw_one_bar_per_row_in_proportion():
    rows = [("Coldplay", 120), ("Muse", 60), ("A band whose name is far too long to print", 30)]
    root = parse(charts.horizontal_bars("Top artists", rows))
    bars = marks(root)
    assert [float(bar.get("data-value", "nan")) for bar in bars] == [120, 60, 30]
    widths = [float(bar.get("width", "nan")) for bar in bars]
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.01)
    assert widths[1] == pytest.approx(2 * widths[2], rel=0.01)
    # The longest bar ends where the right margin begins.
    assert float(bars[0].get("x", "nan")) + widths[0] == pytest.approx(570 - 60, abs=0.2)
    assert [bar.findtext(f"{SVG}title") for bar in bars][:2] == ["Coldplay: 120", "Muse: 60"]
    # A long name is cut to the label column (38 characters), whole in the tooltip.
    long_name = rows[2][0]
    texts = list(root.itertext())
    assert f"{long_name[:37]}…" in texts and long_name not in texts
    assert bars[2].findtext(f"{SVG}title") == f"{long_name}: 30"


def test_text_is_escaped_so_the_svg_stays_well_formed():
    root = parse(charts.horizontal_bars('Plays by <"A & B">', [("Rock & <Roll>", 3)]))
    assert root.get("aria-label") == 'Plays by <"A & B">'
    assert marks(root)[0].findtext(f"{SVG}title") == "Rock & <Roll>: 3"


def test_stacked_columns_add_up_to_each_categorys_total():
    categories = ["Mon", "Tue", "Wed"]
    series = {"free": [10, 20, 5], "paid": [30, 0, 15]}
    root = parse(charts.column_bars("Plays by level", categories, series))
    bars = marks(root)
    assert len(bars) == 6
    assert {bar.get("data-series") for bar in bars} == {"free", "paid"}
    heights: dict[float, float] = {}
    for bar in bars:
        x = round(float(bar.get("x", "nan")), 1)
        heights[x] = heights.get(x, 0.0) + float(bar.get("height", "nan"))
    totals = [40, 20, 20]
    per_unit = [height / total for height, total in zip(heights.values(), totals, strict=True)]
    assert per_unit == pytest.approx([per_unit[0]] * 3, rel=0.01)
    # Two series: a legend names them.
    assert {"free", "paid"} <= set(root.itertext())


def test_side_by_side_columns_stand_apart():
    root = parse(charts.column_bars("x", ["a"], {"s1": [1], "s2": [2]}, stacked=False))
    first, second = marks(root)
    assert float(second.get("x", "nan")) >= float(first.get("x", "nan")) + float(
        first.get("width", "nan")
    )


@pytest.mark.parametrize("value", [0.3, 1, 7, 9.99, 42, 100, 101, 1234, 987654])
@pytest.mark.parametrize("whole", [False, True])
def test_an_axis_ends_at_or_above_the_top_value_in_round_steps(value, whole):
    end, ticks = charts._nice_axis(value, whole=whole)
    assert 3 <= ticks <= 5
    assert end >= value
    step = end / ticks
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 2.5, 5)
    if whole:
        assert step == int(step)
    # Tight: never more than 2.5 times the value (bar a whole axis's least, 3 steps of 1).
    assert end < 2.5 * value or (whole and end == 3)


def test_count_axes_label_whole_numbers():
    root = parse(charts.column_bars("x", ["a", "b"], {"n": [1, 3]}))
    labels = [text for text in root.itertext() if re.fullmatch(r"[\d,.]+", text)]
    assert labels and all("." not in label for label in labels)


def test_a_line_breaks_where_a_value_is_missing():
    days = ["d1", "d2", "d3", "d4"]
    root = parse(charts.lines("Share", days, {"paid": [0.5, None, 0.25, 0.75]}))
    points = marks(root)
    assert [float(p.get("data-value", "nan")) for p in points] == [0.5, 0.25, 0.75]
    path = next(root.iter(f"{SVG}path")).get("d", "")
    assert path.count("M") == 2 and path.count("L") == 1
    # Higher values sit higher (smaller y).
    ys = [float(p.get("cy", "nan")) for p in points]
    assert ys[2] < ys[0] < ys[1]


def test_heatmap_shades_from_pale_to_the_palette_blue():
    root = parse(charts.heatmap("Hour by weekday", ["Mon", "Tue"], ["0", "1"], [[0, 5], [10, 2]]))
    cells = {float(cell.get("data-value", "nan")): cell.get("fill") for cell in marks(root)}
    assert len(cells) == 4
    assert cells[10] == "rgb(59,110,168)"  # the palette's first colour, #3b6ea8
    assert cells[0] == "rgb(236,242,250)"
    assert cells[0] != cells[5] != cells[10]


def test_an_empty_chart_says_so_and_draws_no_marks():
    root = parse(charts.empty("Nothing yet"))
    assert marks(root) == []
    assert "no rows to show" in "".join(root.itertext())


def test_value_formats():
    assert charts.integer(1234567.4) == "1,234,567"
    assert charts.decimal(1234.56) == "1,234.6"
    assert charts.percent(0.256) == "26%"
