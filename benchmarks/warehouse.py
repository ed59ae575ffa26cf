"""The warehouse: a full `dbt build` beside benchmarks/floor.sql (the same star
schema in plain SQL, whose row counts must equal dbt's), dbt's fixed cost (a
build with nothing new, and `dbt parse`), then one more generated day and one
more small file (1% of the events), each loaded and built."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.feed import Folders, count_lines
from benchmarks.measuring import PYTHON, REPO_ROOT, Measure, Recorder, log, run_watched
from benchmarks.scratch import connect_args, scalar

MARTS = ("songplays", "users", "songs", "artists", "time")
DBT = str(Path(PYTHON).parent / "dbt")


def run(
    recorder: Recorder,
    env: dict[str, str],
    event_lines: int,
    folders: Folders,
    repeat: int,
    dbt_dir: Path,
) -> dict[str, tuple[int, int]]:
    """Every warehouse measure, on the feed already loaded into env's database;
    returns each mart's row count from dbt and from floor.sql."""
    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        conn.execute("drop index if exists raw.events_load_id_brin")  # the contract's shape
    profiles = dbt_dir / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "profiles.yml.example", profiles / "profiles.yml")
    dbt_env = {**env, "DBT_PROFILES_DIR": str(profiles), "DO_NOT_TRACK": "1"}
    paths = ["--project-dir", str(REPO_ROOT), "--target-path", str(dbt_dir / "target")]
    paths += ["--log-path", str(dbt_dir / "logs")]

    def build(name: str, *extra: str) -> Measure:
        with recorder.timed(name, "warehouse") as m:
            result = subprocess.run(
                [DBT, "build", *paths, *extra],
                env=dbt_env,
                capture_output=True,
                text=True,
                cwd=REPO_ROOT,
            )
        m.note = _dbt_outcome(result)
        return m

    # The full build: the first build warms up, then --full-refresh builds.
    log(f"dbt build on {event_lines:,} events (full; the first is a warm-up)")
    recorder.warming = True
    build("dbt build, full")
    recorder.warming = False
    for _ in range(repeat):
        build("dbt build, full", "--full-refresh").lines = event_lines
    # The floor, on the same raw tables, beside it.
    floor_sql = (REPO_ROOT / "benchmarks" / "floor.sql").read_text()
    log("floor.sql (the first is a warm-up)")
    for attempt in range(repeat + 1):
        recorder.warming = attempt == 0
        with (
            psycopg.connect(**connect_args(env)) as conn,
            recorder.timed("floor.sql, same star schema", "warehouse") as m,
        ):
            conn.execute(floor_sql)
            conn.commit()
        m.lines = event_lines
    recorder.warming = False
    floor_counts = compare_with_floor(env)
    # dbt's fixed cost: a build with nothing new to read, and parsing the project.
    log("dbt build with nothing new (fixed cost)")
    build("dbt build, nothing new")
    log("dbt parse, no partial parsing (fixed cost)")
    with recorder.timed("dbt parse (no partial parse)", "warehouse") as m:
        result = subprocess.run(
            [DBT, "parse", "--no-partial-parse", *paths],
            env=dbt_env,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
    m.note = _dbt_outcome(result)
    # One more day, then one more small file (1% of the events).
    for what, folder in (("one more day", folders.extra), ("one more small file", folders.small)):
        log(f"loader, {what}")
        lines = count_lines(sorted((folder / "log_data").rglob("*.json")))
        _load_more(recorder, env, what, folder, lines)
        log(f"dbt build after {what}")
        build(f"dbt build, {what}").lines = lines
    shutil.rmtree(dbt_dir, ignore_errors=True)
    return floor_counts


def compare_with_floor(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Row counts of each mart: dbt's (analytics) and the floor's (floor)."""
    counts = {}
    with psycopg.connect(**connect_args(env)) as conn:
        for mart in MARTS:
            ours, floor = (
                int(
                    scalar(conn, sql.SQL("select count(*) from {}").format(sql.Identifier(s, mart)))
                )
                for s in ("analytics", "floor")
            )
            counts[mart] = (ours, floor)
    for mart, (ours, floor) in counts.items():
        log(f"  {mart}: dbt {ours:,}, floor {floor:,}{'' if ours == floor else '  DIFFERENT'}")
    return counts


def _load_more(recorder: Recorder, env: dict[str, str], what: str, feed: Path, lines: int) -> None:
    with recorder.timed(f"loader, {what}", "warehouse") as m:
        run_watched(
            [PYTHON, "-m", "sparkify.loader", "--log-data", str(feed / "log_data"), "-q"], env, m
        )
    m.lines = lines


def _dbt_outcome(result: subprocess.CompletedProcess[str]) -> str:
    """'' if dbt succeeded, else a note that keeps the failed build's time out of the ratios."""
    if result.returncode == 0:
        return ""
    tail = [line for line in result.stdout.splitlines() if line.strip()][-3:]
    return "dbt failed: " + " / ".join(tail)
