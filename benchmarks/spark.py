"""Benchmark the warehouse on Spark against PostgreSQL, side by side (make bench-spark).

One generated feed (--events over --days, its last day held back) is built on
both engines, as a user runs them:

- PostgreSQL: load_raw.py into a scratch database of the server the PG* variables
  name, then `dbt build`; then the last day is loaded and built again.
- Spark: load_raw.py --lake into a scratch lake, then `dbt build --target spark`
  through the Thrift server of a cluster of the bench's own (src/sparkify/spark_cluster.py:
  a master, two workers, the Thrift server on both cores, free ports, a scratch
  catalog database), stopped at the end; then the last day, loaded and built again.

Each engine's first build warms it (a new cluster's JVMs compile as they go); the
full build the day is compared with is the `--full-refresh` after it, warm as the
day's build is. A build is the scheduled run's (src/sparkify/orchestration/warehouse.py's
SCHEDULED_BUILD: the data tests, not the unit tests). Each step is timed once,
wall-clock, with the load average beside it (the machine may be shared). Results
go to benchmarks/results/spark-<events>-events.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from sparkify import spark_cluster
from sparkify.orchestration.settings import SCHEDULED_BUILD

REPO_ROOT = Path(__file__).resolve().parents[1]
# Each engine's first build warms it; "full" is a --full-refresh after it.
STEPS = ("first build", "full", "one more day")
BIN = Path(sys.executable).parent
RESULTS = REPO_ROOT / "benchmarks" / "results"
CLUSTER = [sys.executable, "-m", "sparkify.spark_cluster"]


def log(message: str) -> None:
    print(f"bench-spark: {message}", file=sys.stderr, flush=True)


def timed(name: str, command: list[str], env: dict[str, str], figures: dict) -> None:
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"bench-spark: {name} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    figures[name] = {"seconds": round(seconds, 1), "load_average": os.getloadavg()[0]}
    log(f"{name}: {seconds:.1f} s (load average {os.getloadavg()[0]:.1f})")


def slowest_nodes(target: Path, count: int = 6) -> dict[str, float]:
    """The nodes (models, tests) of the last dbt build that took longest: where
    an engine's time goes."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    ranked = sorted(results, key=lambda result: result["execution_time"], reverse=True)
    return {
        result["unique_id"].split(".", 2)[-1]: round(result["execution_time"], 1)
        for result in ranked[:count]
    }


def statements_per_model(text: str) -> dict[str, int]:
    """SQL statements dbt sent for each model, rewrite or table (its debug
    log, `text`, names the node before each statement's query comment), most
    first."""
    counts: dict[str, int] = {}
    for name in re.findall(r"On model\.sparkify\.(\w+): /\* \{", text):
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# A line of dbt's log file starts with its time, level and thread
# ("12:00:01.500000 [debug] [Thread-2 (]: ..."). A statement's SQL runs on
# over the lines after "On <node>: " (dbt writes each message whole), and its
# thread's next "SQL status" line says how long the server took. With several
# threads the statements of different nodes interleave, so each thread's
# statement is followed on its own.
LOG_LINE = re.compile(r"^\x1b?\[?[0-9;]*m?\d\d:\d\d:\d\d\.\d+ \[[^\]]*\] \[([^\]]*)\]: (.*)$")
STATEMENT_START = re.compile(r"^On [\w.]+: (.*)$")
STATEMENT_SECONDS = re.compile(r"^SQL status: .* in ([0-9.]+) seconds$")


def statement_kind(sql: str) -> str:
    """A statement's first two words, comments left out; a query (a data
    test, a unit test, a look-up) is a `select`."""
    text = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    words = re.sub(r"--[^\n]*", " ", text).lower().split()
    return "select" if words[:1] in (["select"], ["with"]) else " ".join(words[:2])


def seconds_per_statement_kind(text: str) -> dict[str, dict[str, float]]:
    """The server's time per kind of SQL statement of one Spark build (its first
    two words: `merge into`, `cache table`, `create or`, `select` ...), from
    dbt's debug log (`text`): where a build's time goes, most first."""
    kinds: dict[str, dict[str, float]] = {}
    waiting: dict[str, str] = {}  # thread: the kind of its statement sent
    thread, sql_lines = "", None
    for line in text.splitlines():
        logged = LOG_LINE.match(line)
        if sql_lines is not None and not logged:
            sql_lines.append(line)
            continue
        if sql_lines is not None:
            waiting[thread] = statement_kind("\n".join(sql_lines))
            sql_lines = None
        if not logged:
            continue
        thread, message = logged.groups()
        started = STATEMENT_START.match(message)
        if started and started.group(1) != "Close":
            sql_lines = [started.group(1)]
            continue
        took = STATEMENT_SECONDS.match(message)
        if took and thread in waiting:
            entry = kinds.setdefault(waiting.pop(thread), {"statements": 0, "seconds": 0.0})
            entry["statements"] += 1
            entry["seconds"] = round(entry["seconds"] + float(took.group(1)), 1)
    return dict(sorted(kinds.items(), key=lambda item: -item[1]["seconds"]))


def markdown(figures: dict) -> str:
    """The figures side by side: one row per step, each engine's seconds with
    the load average (1 min) when it ended, then where each build's time went."""
    lines = [
        f"# Spark against PostgreSQL: {figures['events_generated']:,} events",
        "",
        f'`make bench-spark BENCH_SPARK_ARGS="--events {figures["events"]}"`: '
        f"{figures['days']} days of logs (the last held back, then loaded and built "
        f"as one more day), {figures['songs']:,} song files; run {figures['started']} "
        f"on {os.cpu_count()} CPUs. Spark is the project's cluster (2 workers, "
        "Iceberg tables). The machine may be shared: "
        "each figure has the load average beside it.",
        "",
        "| step | PostgreSQL s | load | Spark s | load |",
        "|---|---:|---:|---:|---:|",
    ]
    described = {
        "first build": "first build (warms the engine)",
        "full": "full (`--full-refresh`, warm)",
        "one more day": "one more day",
    }
    for step in STEPS:
        for what, pg, spark in (
            ("load", "postgres load", "spark lake load"),
            ("dbt build", "postgres dbt build", "spark dbt build"),
        ):
            if f"{pg}, {step}" not in figures:  # no load before the full refresh
                continue
            a, b = figures[f"{pg}, {step}"], figures[f"{spark}, {step}"]
            lines.append(
                f"| {what}, {described[step]} | {a['seconds']} | {a['load_average']:.1f} "
                f"| {b['seconds']} | {b['load_average']:.1f} |"
            )
    lines += ["", "Slowest nodes of each build (dbt's execution time, seconds):", ""]
    for engine in ("postgres", "spark"):
        for step in ("full", "one more day"):
            slowest = figures[f"{engine} dbt build, {step}"]["slowest"]
            listed = ", ".join(f"{name} {seconds}" for name, seconds in slowest.items())
            lines.append(f"- {engine}, {step}: {listed}")
    lines += ["", "Spark: SQL statements per model, one more day:", ""]
    statements = figures["spark dbt build, one more day"].get("statements", {})
    lines.append(", ".join(f"{name} {count}" for name, count in statements.items()))
    lines += ["", "Spark: the server's time per kind of statement (count, seconds):", ""]
    for step in ("full", "one more day"):
        kinds = figures[f"spark dbt build, {step}"].get("statement_kinds", {})
        listed = ", ".join(
            f"`{kind}` {entry['statements']:.0f}, {entry['seconds']}"
            for kind, entry in list(kinds.items())[:8]
        )
        lines.append(f"- {step}: {listed}")
    # The ratio the issue asks for: one more day as a fraction of the full build.
    lines += ["", "One more day as a fraction of the (warm) full build:", ""]
    for engine in ("postgres", "spark"):
        day = figures[f"{engine} dbt build, one more day"]["seconds"]
        full = figures[f"{engine} dbt build, full"]["seconds"]
        lines.append(f"- {engine}: {day / full:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--days", type=int, default=30, help="days of logs (the last is held back)")
    parser.add_argument("--songs", type=int, default=5_000, help="song files to generate")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the scratch folder (feed, lake, dbt's debug logs of each Spark build)",
    )
    args = parser.parse_args(argv)
    if not os.environ.get("PGHOST"):
        log("PGHOST is not set: run through 'python -m sparkify.embedded_pg exec -- ...'")
        return 2
    (REPO_ROOT / ".spark").mkdir(exist_ok=True)  # before any make run-spark made it
    work = Path(tempfile.mkdtemp(prefix="bench-spark-", dir=REPO_ROOT / ".spark"))
    database = f"sparkify_bench_{uuid.uuid4().hex[:8]}"
    figures: dict = {"events": args.events, "days": args.days, "songs": args.songs}
    figures["started"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cluster_started = False
    spark: dict[str, str] = {}
    try:
        feed = work / "feed"
        subprocess.run(
            [
                str(BIN / "python"),
                "-m",
                "sparkify.generator",
                "--out",
                str(feed),
                "--days",
                str(args.days),
                "--songs",
                str(args.songs),
                # As benchmarks/ingest.py: with the generator's default 100
                # users, most planned sessions find every user busy and are
                # dropped (--events 1000000 gave 707,254 events).
                "--users",
                str(max(100, args.events // 500)),
                "--events-per-day",
                str(round(args.events / args.days)),
                "--quiet",
            ],
            cwd=REPO_ROOT,
            check=True,
        )
        summary = json.loads((feed / "_truth" / "summary.json").read_text())
        figures["events_generated"] = summary["events"]
        last_day = sorted((feed / "log_data").rglob("*-events.json"))[-1]
        held_back = work / last_day.name
        shutil.move(last_day, held_back)

        with psycopg.connect(dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        base = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        pg = {**base, "PGDATABASE": database}
        # A cluster of the bench's own (folder, free ports, catalog), so that it
        # neither meets a cluster of the user's nor builds into its catalog.
        spark = {
            **base,
            **{key: str(value) for key, value in spark_cluster.free_ports().items()},
            "SPARKIFY_SPARK_DIR": str(work / "spark"),
            "SPARKIFY_METASTORE_DB": f"{database}_metastore",
            "SPARKIFY_LAKE_CATALOG_DB": f"{database}_lake",
            # No other application shares it: the Thrift server takes both cores.
            "SPARKIFY_SPARK_THRIFT_CORES": "2",
            "SPARKIFY_LAKE": str(work / "lake"),
        }
        subprocess.run([*CLUSTER, "start"], env=spark, cwd=REPO_ROOT, check=True)
        cluster_started = True
        load = [str(BIN / "python"), "-m", "sparkify.loader", "--data-dir", str(feed), "-q"]
        lake = [*load, "--lake", str(work / "lake")]
        dbt = [str(BIN / "dbt"), *SCHEDULED_BUILD, "--target-path", str(work / "target")]
        for step in STEPS:
            if step == "one more day":
                shutil.move(held_back, last_day)
            build = [*dbt, "--full-refresh"] if step == "full" else dbt
            if step != "full":  # the full refresh reads the warm-up's load
                timed(f"postgres load, {step}", load, pg, figures)
            timed(f"postgres dbt build, {step}", build, pg, figures)
            figures[f"postgres dbt build, {step}"]["slowest"] = slowest_nodes(work / "target")
            if step != "full":
                timed(f"spark lake load, {step}", lake, spark, figures)
            logs = work / "logs" / step.replace(" ", "-")
            spark_dbt = [*build, "--target", "spark", "--log-path", str(logs)]
            timed(f"spark dbt build, {step}", spark_dbt, spark, figures)
            figures[f"spark dbt build, {step}"]["slowest"] = slowest_nodes(work / "target")
            debug_log = (logs / "dbt.log").read_text(errors="replace")
            built = figures[f"spark dbt build, {step}"]
            built["statements"] = statements_per_model(debug_log)
            built["statement_kinds"] = seconds_per_statement_kind(debug_log)
    finally:
        if cluster_started:
            subprocess.run([*CLUSTER, "stop"], env=spark, cwd=REPO_ROOT, check=False)
        with psycopg.connect(dbname="postgres", autocommit=True) as conn:
            for name in (database, f"{database}_metastore", f"{database}_lake"):
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )
        if args.keep:
            log(f"kept {work} (dbt's logs of each Spark build: {work / 'logs'})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"spark-{args.events}-events.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(figures))
    log(f"written {out.relative_to(REPO_ROOT)} and its .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
