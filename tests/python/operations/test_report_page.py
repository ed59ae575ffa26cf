"""The report `make report` writes, rendered in a real headless Chromium (Debian's) with
JavaScript switched off and the network refused: every chart must draw, one visible
mark per value, and say what the warehouse says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analyst_site import SCREENSHOTS
from helpers import connect
from sparkify.checks.docs_check import load_artifacts

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt, Chromium

# Each chart's figure: its svg's box, and every mark's series, value and box.
_FIGURES = """figures => figures.map(figure => {
    const box = element => {
        const r = element.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height};
    };
    const svg = figure.querySelector('svg');
    return {
        key: figure.id,
        model: figure.dataset.model,
        expected: figure.dataset.marks,
        svgs: figure.querySelectorAll('svg').length,
        svg: svg ? box(svg) : {x: 0, y: 0, w: 0, h: 0},
        marks: Array.from(figure.querySelectorAll('svg .mark')).map(mark => ({
            series: mark.getAttribute('data-series'),
            value: mark.getAttribute('data-value'),
            ...box(mark),
        })),
    };
})"""


@pytest.fixture(scope="module")
def report_file(built_site, tmp_path_factory) -> Path:
    """The report, written by the builder as `make report` runs it."""
    out = tmp_path_factory.mktemp("report") / "index.html"
    built = subprocess.run(
        [sys.executable, "-m", "sparkify.report.build_report", "--out", str(out)],
        env=built_site.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    assert f"report: {out}" in built.stdout
    return out


def test_report_is_one_offline_file_without_scripts(report_file):
    html = report_file.read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    # Nothing to fetch: no links, images, fonts or styles from anywhere.
    for attribute in ("src=", "href=", "@import", "url("):
        assert attribute not in html.lower(), attribute


def test_every_chart_draws_in_chromium(built_site, report_file, chromium_browser):
    manifest, _ = load_artifacts(built_site.target)
    exposure = manifest["exposures"]["exposure.sparkify.sparkify_listening_report"]
    charted_models = {uid.split(".")[-1] for uid in exposure["depends_on"]["nodes"]}

    context = chromium_browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    fetched = []

    def refuse(route):
        if not route.request.url.startswith("file://"):
            fetched.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", refuse)
    page = context.new_page()
    try:
        page.goto(report_file.as_uri(), wait_until="load")
        # Read through the browser's DevTools, not the page: its own scripts stay off.
        figures = page.locator("figure.chart").evaluate_all(_FIGURES)
        drawn: dict[str, dict] = {}
        for figure in figures:
            box = figure["svg"]
            assert figure["svgs"] == 1 and box["w"] > 100 and box["h"] > 40, figure["key"]
            marks = figure["marks"]
            drawn[figure["key"]] = {
                "model": figure["model"],
                "expected": int(figure["expected"]),
                "marks": len(marks),
                "visible": sum(1 for m in marks if m["w"] > 0 and m["h"] > 0),
                "inside": all(
                    m["x"] >= box["x"] - 1
                    and m["x"] + m["w"] <= box["x"] + box["w"] + 1
                    and m["y"] >= box["y"] - 1
                    and m["y"] + m["h"] <= box["y"] + box["h"] + 1
                    for m in marks
                ),
                "values": [(m["series"], float(m["value"])) for m in marks],
            }
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()

    assert fetched == [], f"the report tried to fetch: {fetched}"
    assert len(drawn) >= len(charted_models)
    # Every model the exposure names is charted.
    assert {chart["model"] for chart in drawn.values()} == charted_models
    for key, chart in drawn.items():
        assert chart["marks"] > 0, f"{key} drew nothing"
        assert chart["marks"] == chart["expected"], key
        assert chart["visible"] > 0, f"{key} drew no visible mark"
        assert chart["inside"], f"{key} drew marks outside its chart"
    assert shot.stat().st_size > 50_000

    # The charts say what the warehouse says.
    with connect(built_site.env) as conn:
        plays = conn.execute("select count(*) from analytics.songplays").fetchone()[0]
        top_song = conn.execute("select max(play_count) from reports.rpt_top_songs").fetchone()[0]
        falling = conn.execute(
            "select count(*) from reports.rpt_churn_signals where is_falling"
        ).fetchone()[0]
        upgrades = conn.execute(
            "select count(*) from (select level, lag(level) over ("
            "partition by user_id order by valid_from) as previous_level "
            "from analytics.users_history) as periods "
            "where previous_level = 'free' and level = 'paid'"
        ).fetchone()[0]
    assert sum(value for _, value in drawn["chart-by-hour"]["values"]) == plays
    assert max(value for _, value in drawn["chart-top-songs"]["values"]) == top_song
    assert drawn["chart-falling-users"]["marks"] == 2 * min(falling, 15)
    conversions = drawn["chart-conversions"]["values"]
    assert sum(value for series, value in conversions if series == "upgrades") == upgrades
