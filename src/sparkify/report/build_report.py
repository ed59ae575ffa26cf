"""Write the Sparkify listening report: one static HTML page of charts of the report models.

    python -m sparkify.report.build_report [--out reports/index.html] [--schema reports]

It reads the `rpt_*` tables that `dbt build` made in schema `reports` (PG* variables
name the server, as for every other step) and writes one self-contained HTML file: CSS
and inline SVG only, no JavaScript, no fonts or images to fetch, so it opens offline
from the file. Each section states the question its model answers, taken from the
model's description that dbt persists on the table (`persist_docs`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from sparkify.messages import one_line
from sparkify.report import svg_charts as charts

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Chart:
    """One figure: a query over one report model, and how to draw its rows."""

    key: str
    title: str
    model: str
    query: str  # SQL with {relation} where the model's table goes
    draw: Callable[[Rows], str]
    caption: Callable[[Rows], str] | None = None


@dataclass(frozen=True)
class Section:
    title: str
    models: tuple[str, ...]
    charts: tuple[Chart, ...]


def _by_hour(rows: Rows) -> str:
    return charts.column_bars(
        "Plays by hour of day, free and paid",
        [str(row["hour"]) for row in rows],
        {
            "free": [row["free"] for row in rows],
            "paid": [row["paid"] for row in rows],
        },
        label_every=2,
    )


def _level_shares(rows: Rows) -> str:
    return charts.lines(
        "Paid share of users, listeners and plays by day",
        [row["date_day"].strftime("%b %d") for row in rows],
        {
            "users": [_float(row["paid_user_share"]) for row in rows],
            "listeners": [_float(row["paid_listener_share"]) for row in rows],
            "plays": [_float(row["paid_play_share"]) for row in rows],
        },
        axis_max=1.0,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _heatmap(rows: Rows) -> str:
    names = list(dict.fromkeys(row["weekday_name"] for row in rows))
    grid = [[0.0] * 24 for _ in names]
    for row in rows:
        grid[names.index(row["weekday_name"])][row["hour"]] = float(row["plays_per_day"] or 0)
    return charts.heatmap(
        "Plays per day in each hour of each weekday", names, [str(h) for h in range(24)], grid
    )


def _sum(rows: Rows, column: str) -> float:
    return sum(float(row[column] or 0) for row in rows)


SECTIONS = (
    Section(
        "Most played songs and artists",
        ("rpt_top_songs", "rpt_top_artists"),
        (
            Chart(
                "top-songs",
                "Top 10 songs",
                "rpt_top_songs",
                "select title, artist_name, play_count from {relation} "
                "order by play_rank, title limit 10",
                lambda rows: charts.horizontal_bars(
                    "Top 10 songs by plays",
                    [(f"{r['title']} — {r['artist_name']}", r["play_count"]) for r in rows],
                ),
                lambda rows: "Plays that matched a catalogue song; the rest have no song.",
            ),
            Chart(
                "top-artists",
                "Top 10 artists",
                "rpt_top_artists",
                "select artist_name, play_count from {relation} "
                "order by play_rank, artist_name limit 10",
                lambda rows: charts.horizontal_bars(
                    "Top 10 artists by plays",
                    [(r["artist_name"], r["play_count"]) for r in rows],
                    color=charts.PALETTE[1],
                ),
            ),
        ),
    ),
    Section(
        "When people listen",
        ("rpt_plays_by_hour_weekday",),
        (
            Chart(
                "hour-weekday",
                "Plays per day, by hour (UTC) and weekday",
                "rpt_plays_by_hour_weekday",
                "select weekday, weekday_name, hour, plays_per_day from {relation} "
                "order by weekday, hour",
                _heatmap,
                lambda rows: "Darker is busier: plays in that hour on an average such day.",
            ),
            Chart(
                "by-hour",
                "Plays by hour of day (UTC)",
                "rpt_plays_by_hour_weekday",
                "select hour, sum(free_play_count) as free, sum(paid_play_count) as paid "
                "from {relation} group by hour order by hour",
                _by_hour,
            ),
            Chart(
                "by-weekday",
                "Plays on an average day of each weekday",
                "rpt_plays_by_hour_weekday",
                "select weekday, weekday_name, "
                "cast(sum(play_count) as numeric) / nullif(max(day_count), 0) as plays_per_day "
                "from {relation} group by weekday, weekday_name order by weekday",
                lambda rows: charts.column_bars(
                    "Plays per day by weekday",
                    [r["weekday_name"][:3] for r in rows],
                    {"plays per day": [float(r["plays_per_day"] or 0) for r in rows]},
                    fmt=charts.integer,
                ),
            ),
        ),
    ),
    Section(
        "Free and paid",
        ("rpt_level_share_daily", "rpt_level_conversions"),
        (
            Chart(
                "level-share",
                "Paid share by day: users, listeners, plays",
                "rpt_level_share_daily",
                "select date_day, paid_user_share, paid_listener_share, paid_play_share "
                "from {relation} order by date_day",
                _level_shares,
            ),
            Chart(
                "conversions",
                "Upgrades and downgrades by day",
                "rpt_level_conversions",
                "select date_day, upgrade_count, downgrade_count, cumulative_upgrade_count, "
                "cumulative_downgrade_count from {relation} order by date_day",
                lambda rows: charts.column_bars(
                    "Upgrades and downgrades by day",
                    [r["date_day"].strftime("%b %d") for r in rows],
                    {
                        "upgrades": [r["upgrade_count"] for r in rows],
                        "downgrades": [r["downgrade_count"] for r in rows],
                    },
                    stacked=False,
                    label_every=7,
                ),
                lambda rows: (
                    f"Over the period: {_sum(rows, 'upgrade_count'):,.0f} upgrades, "
                    f"{_sum(rows, 'downgrade_count'):,.0f} downgrades."
                ),
            ),
        ),
    ),
    Section(
        "Devices",
        ("rpt_plays_by_device",),
        (
            Chart(
                "browsers",
                "Plays by browser",
                "rpt_plays_by_device",
                "select browser_family, sum(play_count) as play_count from {relation} "
                "group by browser_family order by play_count desc, browser_family",
                lambda rows: charts.horizontal_bars(
                    "Plays by browser family",
                    [(r["browser_family"], r["play_count"]) for r in rows],
                    color=charts.PALETTE[4],
                ),
            ),
            Chart(
                "operating-systems",
                "Plays by operating system",
                "rpt_plays_by_device",
                "select os_family, sum(play_count) as play_count from {relation} "
                "group by os_family order by play_count desc, os_family",
                lambda rows: charts.horizontal_bars(
                    "Plays by operating system family",
                    [(r["os_family"], r["play_count"]) for r in rows],
                    color=charts.PALETTE[5],
                ),
            ),
        ),
    ),
    Section(
        "Locations",
        ("rpt_plays_by_location",),
        (
            Chart(
                "regions",
                "Plays by US region",
                "rpt_plays_by_location",
                "select coalesce(region, 'Unknown') as region, sum(play_count) as play_count "
                "from {relation} group by 1 order by play_count desc, region",
                lambda rows: charts.horizontal_bars(
                    "Plays by Census region",
                    [(r["region"], r["play_count"]) for r in rows],
                    color=charts.PALETTE[2],
                ),
            ),
            Chart(
                "cities",
                "Top 10 cities",
                "rpt_plays_by_location",
                "select city, state_code, play_count from {relation} "
                "where city is not null order by play_count desc, city limit 10",
                lambda rows: charts.horizontal_bars(
                    "Top 10 cities by plays",
                    [(f"{r['city']}, {r['state_code'] or '?'}", r["play_count"]) for r in rows],
                    color=charts.PALETTE[2],
                ),
                lambda rows: "The feed's locations are metropolitan areas, named by their cities.",
            ),
        ),
    ),
    Section(
        "Sessions",
        ("rpt_sessions",),
        (
            Chart(
                "plays-per-session",
                "Sessions by songs played",
                "rpt_sessions",
                "select bucket, count(*) as session_count from ("
                " select case when play_count = 1 then '1' when play_count <= 5 then '2-5'"
                " when play_count <= 10 then '6-10' when play_count <= 20 then '11-20'"
                " when play_count <= 50 then '21-50' else '51+' end as bucket,"
                " least(play_count, 51) as bucket_order from {relation}) as buckets "
                "group by bucket order by min(bucket_order)",
                lambda rows: charts.column_bars(
                    "Sessions by number of songs played",
                    [r["bucket"] for r in rows],
                    {"sessions": [r["session_count"] for r in rows]},
                ),
                lambda rows: "Songs played per session.",
            ),
            Chart(
                "session-length",
                "Sessions by length",
                "rpt_sessions",
                "select bucket, count(*) as session_count from ("
                " select case when session_minutes < 1 then '<1 min'"
                " when session_minutes < 15 then '1-15' when session_minutes < 30 then '15-30'"
                " when session_minutes < 60 then '30-60' when session_minutes < 120 then '1-2 h'"
                " else '2 h+' end as bucket, session_minutes from {relation}) as buckets "
                "group by bucket order by min(session_minutes)",
                lambda rows: charts.column_bars(
                    "Sessions by length, first to last play",
                    [r["bucket"] for r in rows],
                    {"sessions": [r["session_count"] for r in rows]},
                ),
                lambda rows: "Minutes from the first play's start to the last play's start.",
            ),
        ),
    ),
    Section(
        "Churn signals",
        ("rpt_churn_signals",),
        (
            Chart(
                "falling-users",
                "Users whose listening is falling",
                "rpt_churn_signals",
                "select user_id, level, prior_play_count, recent_play_count, is_silent "
                "from {relation} where is_falling "
                "order by play_count_change, user_id limit 15",
                lambda rows: charts.column_bars(
                    "Plays before and recently, falling users",
                    [r["user_id"] for r in rows],
                    {
                        "prior window": [r["prior_play_count"] for r in rows],
                        "recent window": [r["recent_play_count"] for r in rows],
                    },
                    stacked=False,
                ),
                lambda rows: (
                    "User ids on the axis; the biggest drops first (at most 15). "
                    f"{sum(1 for r in rows if r['is_silent'])} of them stopped altogether."
                ),
            ),
        ),
    ),
)


def fetch(conn: psycopg.Connection, schema: str, chart: Chart) -> Rows:
    query = sql.SQL(chart.query).format(relation=sql.Identifier(schema, chart.model))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query).fetchall()


def questions(conn: psycopg.Connection, schema: str, models: set[str]) -> dict[str, str]:
    """Each model's question: the bold first line of the description dbt persisted."""
    found = {}
    rows = conn.execute(
        "select c.relname, obj_description(c.oid, 'pg_class') from pg_catalog.pg_class as c "
        "join pg_catalog.pg_namespace as n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = any(%s)",
        (schema, sorted(models)),
    ).fetchall()
    for name, comment in rows:
        match = re.search(r"\*\*Question:\s*(.+?)\*\*", comment or "", flags=re.DOTALL)
        if match:
            question = " ".join(match.group(1).split())
            found[name] = question[:1].upper() + question[1:]
    return found


def headline(conn: psycopg.Connection, schema: str) -> list[tuple[str, str]]:
    """A few totals for the top of the page."""

    def one(query: str, model: str) -> Any:
        q = sql.SQL(query).format(relation=sql.Identifier(schema, model))
        return conn.execute(q).fetchone()

    first, last, plays = one(
        "select min(date_day), max(date_day), sum(play_count) from {relation}",
        "rpt_level_share_daily",
    )
    users, paid_share = one(
        "select user_count, paid_user_share from {relation} order by date_day desc limit 1",
        "rpt_level_share_daily",
    ) or (0, None)
    (sessions,) = one("select count(*) from {relation}", "rpt_sessions")
    (falling,) = one("select count(*) from {relation} where is_falling", "rpt_churn_signals")
    return [
        ("period", f"{first:%b %d} to {last:%b %d, %Y}" if first else "no data"),
        ("plays", f"{plays or 0:,}"),
        ("users", f"{users or 0:,}"),
        (
            "paid users at the end",
            charts.percent(float(paid_share)) if paid_share is not None else "none",
        ),
        ("sessions", f"{sessions:,}"),
        ("falling users", f"{falling:,}"),
    ]


STYLE = """
body{margin:0;background:#f6f7f9;color:#222;font:14px/1.45 system-ui,-apple-system,'Segoe UI',
Roboto,'DejaVu Sans',sans-serif}
header{background:#1f3a5f;color:#fff;padding:20px 32px}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;opacity:.85}
.kpis{display:flex;flex-wrap:wrap;gap:12px;padding:16px 32px 0}
.kpi{background:#fff;border-radius:6px;padding:10px 16px;box-shadow:0 1px 2px #0002}
.kpi b{display:block;font-size:20px}
.kpi span{color:#666;font-size:12px}
main{padding:8px 32px 32px}
section{margin-top:20px}
section h2{margin:0 0 4px;font-size:18px}
section p.question{margin:0 0 10px;color:#555;font-style:italic}
.grid{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{margin:0;background:#fff;border-radius:6px;padding:12px 14px;
box-shadow:0 1px 2px #0002}
figure.chart figcaption{font-weight:600;margin-bottom:6px}
figure.chart p.note{margin:6px 0 0;color:#666;font-size:12px;max-width:570px}
footer{padding:0 32px 24px;color:#777;font-size:12px}
"""


def render(conn: psycopg.Connection, schema: str) -> tuple[str, int]:
    """The page's HTML, and how many charts it holds."""
    asked = questions(conn, schema, {m for s in SECTIONS for m in s.models})
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Sparkify listening report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<header><h1>Sparkify listening report</h1>",
        "<p>Who listens to what, when, where and on what: the analysts' questions, "
        f"answered by the report models in schema <code>{escape(schema)}</code>.</p></header>",
        '<div class="kpis">',
    ]
    for name, value in headline(conn, schema):
        parts.append(f'<div class="kpi"><b>{escape(value)}</b><span>{escape(name)}</span></div>')
    parts.append("</div><main>")
    count = 0
    for section in SECTIONS:
        parts.append(f"<section><h2>{escape(section.title)}</h2>")
        for model in section.models:
            if model in asked:
                parts.append(
                    f'<p class="question">{escape(asked[model])} '
                    f"<small>(<code>{escape(model)}</code>)</small></p>"
                )
        parts.append('<div class="grid">')
        for chart in section.charts:
            rows = fetch(conn, schema, chart)
            count += 1
            svg = charts.empty(chart.title) if not rows else chart.draw(rows)
            marks = svg.count('class="mark"')
            parts.append(
                f'<figure class="chart" id="chart-{chart.key}" data-model="{chart.model}" '
                f'data-marks="{marks}"><figcaption>{escape(chart.title)}</figcaption>{svg}'
            )
            if chart.caption and rows:
                parts.append(f'<p class="note">{escape(chart.caption(rows))}</p>')
            parts.append("</figure>")
        parts.append("</div></section>")
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"</main><footer>Built {built} by <code>make report</code> "
        "(src/sparkify/report/build_report.py). Static HTML and SVG: no scripts, nothing fetched."
        "</footer></body></html>"
    )
    return "\n".join(parts), count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sparkify.report.build_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("reports/index.html"))
    parser.add_argument("--schema", default="reports", help="schema of the rpt_ models")
    args = parser.parse_args(argv)
    try:
        with psycopg.connect() as conn:
            html, count = render(conn, args.schema)
    except psycopg.Error as exc:
        print(f"build_report: {one_line(exc)} (has 'make build' run?)", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(html, encoding="utf-8")
    print(f"report: {args.out} ({count} charts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
