"""The report: the kept measures and the goals, as JSON and as markdown, in
benchmarks/results/ (latest.* and a copy named after the event count; the S3
scenario alone writes s3-*.* only)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import asdict
from typing import Any

import psutil

from benchmarks import goals
from benchmarks.feed import Feed
from benchmarks.measuring import Measure, cpu_cell, log
from benchmarks.options import Options
from benchmarks.scratch import RESULTS, server_version


def write(
    options: Options,
    feed: Feed,
    measures: list[Measure],
    floor_counts: dict[str, tuple[int, int]],
    started: dt.datetime,
) -> None:
    results = collect(options, feed, measures, floor_counts, started)
    text = markdown(results, options, measures, floor_counts)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = (
        f"{options.events // 1000}k-events"
        if options.events < 10**6
        else f"{options.events // 10**6}M-events"
    )
    if options.skip_dbt and not options.s3_only:  # the loader's figures alone
        stem = f"loader-{stem}"
    names = (f"s3-{stem}",) if options.s3_only else ("latest", stem)
    for name in names:
        (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(text)
    print(text)
    log("results in " + " and ".join(str(RESULTS / f"{name}.md") for name in names))


def collect(
    options: Options,
    feed: Feed,
    measures: list[Measure],
    floor_counts: dict[str, tuple[int, int]],
    started: dt.datetime,
) -> dict[str, Any]:
    """The JSON: the machine, the options, the feed, every kept measure and the goals."""
    return {
        "run_at": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0],
            "postgresql": server_version(),
        },
        "options": asdict(options),
        "feed": {
            "event_lines": feed.event_lines,
            "event_files": len(feed.event_files),
            "event_mb": round(feed.event_bytes / 2**20, 1),
            "song_files": len(feed.song_files),
            "song_mb": round(feed.song_bytes / 2**20, 1),
        },
        "measures": [
            {
                **asdict(m),
                "lines_per_s": round(m.lines_per_s),
                "mb_per_s": round(m.mb_per_s, 1),
                "files_per_s": round(m.files_per_s),
            }
            for m in measures
        ],
        "targets": goals.evaluate(measures, options.workers),
        "floor_counts": {
            mart: {"dbt": ours, "floor": floor} for mart, (ours, floor) in floor_counts.items()
        },
    }


def markdown(
    results: dict[str, Any],
    options: Options,
    measures: list[Measure],
    floor_counts: dict[str, tuple[int, int]],
) -> str:
    feed, machine = results["feed"], results["machine"]
    lines = [
        f"# Ingest benchmark: {feed['event_lines']:,} events, {feed['song_files']:,} song files",
        "",
        f"Run {results['run_at']} on {machine['cpus']} CPUs, {machine['memory_gb']} GB, "
        f"PostgreSQL {machine['postgresql']}, Python {machine['python']}; "
        f"{options.workers} workers. Event logs: {feed['event_files']} files, "
        f"{feed['event_mb']} MB; song files: {feed['song_mb']} MB. "
        "Load average (1 min) before → after each run: the machine may be shared, so "
        "compare figures side by side, not across runs.",
        "",
        "| what | run | seconds | lines/s | MB/s | files/s "
        "| peak RSS MB (tree / largest process) | CPU s (client / machine) | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_measure_row(m) for m in measures]
    lines += ["", "| target | ratio | goal | met |", "|---|---:|---|---|"]
    for t in results["targets"]:
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']}"
        met = {True: "yes", False: "no", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {ratio} | {t['goal']} | {met} |")
    if floor_counts:
        lines += [
            "",
            "Row counts of the marts, dbt against floor.sql (they must be equal):",
            "",
            "| mart | dbt | floor.sql |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {mart} | {ours:,} | {floor:,} |" for mart, (ours, floor) in floor_counts.items()
        ]
    lines += [
        "",
        f"Each figure is the best of {options.repeat} runs after one warm-up run "
        f"(warehouse builds and floor.sql: best of {options.warehouse_repeat} after one "
        "warm-up; the one-more-day and small-file builds and the reads run once or best of "
        "3). The server baselines copy into a bare table: one jsonb column, no key, no "
        "index. Every run's time is in the JSON (`details.all_seconds`).",
    ]
    extrapolated = [m for m in measures if m.extrapolated_from]
    if extrapolated:
        lines += [
            "",
            "Per-row figures are extrapolated from a subset: "
            + "; ".join(f"{m.what} from {m.extrapolated_from}" for m in extrapolated)
            + ".",
        ]
    lines += [
        "",
        "Reproduce: `make bench` (or `python -m sparkify.embedded_pg exec -- "
        f"python -m benchmarks.ingest --events {options.events} --songs {options.songs}"
        f"{' --warehouse-only' if options.warehouse_only else ''}"
        f"{' --s3-only' if options.s3_only else ''}`).",
        "",
    ]
    return "\n".join(lines)


def _measure_row(m: Measure) -> str:
    if m.note and not m.seconds:
        return f"| {m.what} | {m.name} | {m.note} | | | | | | |"
    rss = (
        f"{m.peak_rss_mb:.0f} / {m.peak_process_rss_mb:.0f}"
        if m.peak_rss_mb is not None and m.peak_process_rss_mb is not None
        else ""
    )
    cpu = cpu_cell(m.client_cpu_seconds, m.machine_cpu_seconds)
    seconds = f"{m.seconds:.2f}" + (" (extrapolated)" if m.extrapolated_from else "")
    return (
        f"| {m.what} | {m.name}{' (' + m.note + ')' if m.note else ''} | {seconds} | "
        f"{m.lines_per_s:,.0f} | {m.mb_per_s:.1f} | {m.files_per_s:,.0f} | {rss} | {cpu} | "
        f"{m.load_before:.2f} → {m.load_after:.2f} |"
    )
