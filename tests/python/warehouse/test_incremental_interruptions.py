"""The incremental contract under interruptions: the next plain build equals a full refresh.

Each test interrupts the pipeline the way a user's day would (a model that fails on
a lock, a partial run, a killed build, a loader whose sessions the server ends, a
build running during a load, a corrected or redelivered file), then runs a plain
`dbt build` and compares a fingerprint of every table dbt builds with the same
fingerprint after `dbt build --full-refresh` of the same raw data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import (
    REPO_ROOT,
    assert_equal_to_full_refresh,
    build,
    connect,
    dbt_invocation,
    dbt_results,
    deliver,
    generate_feed,
    kill_group,
    load_json,
    run_dbt,
    run_loader,
    start_loader,
    wait_until,
)
from interruptions import Blocker, blocking_pids, start_dbt

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

FEED = ("--days", "6", "--users", "12", "--songs", "40", "--events-per-day", "120")


def split_feed(tmp_path: Path, parts: int = 3) -> tuple[Path, list[list[Path]]]:
    """A generated feed, and its day files cut into consecutive parts."""
    feed = tmp_path / "feed"
    generate_feed(feed, *FEED, "--faults")
    days = sorted((feed / "log_data").rglob("*-events.json"))
    size = -(-len(days) // parts)
    return feed, [days[i : i + size] for i in range(0, len(days), size)]


def load(env: dict[str, str], folder: Path) -> None:
    loaded = run_loader(env, "--data-dir", folder)
    assert loaded.returncode == 0, loaded.stderr


def first_part_built(env: dict[str, str], tmp_path: Path) -> tuple[Path, list[list[Path]], Path]:
    """A split feed whose first part is loaded and built: (feed, parts, delivery folder)."""
    feed, parts = split_feed(tmp_path)
    delivery = tmp_path / "delivery"
    deliver(feed, delivery, parts[0])
    load(env, delivery)
    build(env, tmp_path)
    return feed, parts, delivery


def test_a_model_that_failed_on_a_lock_is_caught_up(db_env, tmp_path):
    feed, parts, delivery = first_part_built(db_env, tmp_path)
    deliver(feed, delivery, parts[1])
    load(db_env, delivery)

    # An analyst's open transaction holds analytics.time against writes: the
    # build commits songplays, then fails on time (and skips what reads it).
    holder = connect(db_env)
    try:
        holder.execute("create index on analytics.time (hour)")
        failed = run_dbt({**db_env, "PGOPTIONS": "-c lock_timeout=3s"}, tmp_path, "build")
        assert failed.returncode != 0
        assert "lock timeout" in dbt_results(tmp_path)["time"]["message"]
    finally:
        holder.rollback()
        holder.close()
    assert_equal_to_full_refresh(db_env, tmp_path)


def test_a_partial_run_then_a_build_is_caught_up(db_env, tmp_path):
    feed, parts, delivery = first_part_built(db_env, tmp_path)
    deliver(feed, delivery, parts[1])
    load(db_env, delivery)
    partial = run_dbt(db_env, tmp_path, "run", "--select", "+songplays")
    assert partial.returncode == 0, partial.stdout[-3000:]
    deliver(feed, delivery, parts[2])
    load(db_env, delivery)
    assert_equal_to_full_refresh(db_env, tmp_path)


def test_a_build_killed_midway_is_caught_up(db_env, tmp_path):
    feed, parts, delivery = first_part_built(db_env, tmp_path)
    deliver(feed, delivery, parts[1])
    load(db_env, delivery)

    # Kill the build when songplays has committed and the models after it have not
    # all run: a model that reads songplays is made to wait on a held lock.
    holder = connect(db_env)
    holder.execute("lock table analytics.time in share mode")
    running = start_dbt(db_env, tmp_path, "build")
    try:
        wait_until(
            lambda: holder.info.backend_pid in blocking_pids(db_env),
            "the build to wait on analytics.time",
        )
        os.killpg(running.pid, signal.SIGKILL)
        running.wait(timeout=60)
    finally:
        holder.rollback()
        holder.close()
    wait_until(lambda: not dbt_sessions(db_env), "the killed build's sessions to end")
    assert_equal_to_full_refresh(db_env, tmp_path)


def test_loader_sessions_ended_by_the_server_during_a_build(db_env, tmp_path):
    """The loader's sessions are terminated mid-load while a build runs: the build
    never reads a half-committed load, and the re-run loads and builds the rest."""
    feed, parts, delivery = first_part_built(db_env, tmp_path)
    deliver(feed, delivery, parts[1] + parts[2])

    last_file = max(p.relative_to(delivery).as_posix() for p in delivery.rglob("*-events.json"))
    blocker = Blocker(db_env, last_file)
    loader = start_loader(db_env, tmp_path / "loader.err", "--data-dir", delivery, "--workers", "2")
    try:
        wait_until(blocker.blocked_pids, "the loader to reach the last file")
        built_meanwhile = run_dbt(db_env, tmp_path, "build")
        assert built_meanwhile.returncode == 0, built_meanwhile.stdout[-3000:]
        with connect(db_env) as conn:
            conn.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name like 'sparkify load_raw%%'"
            )
        loader.wait(timeout=120)
    finally:
        blocker.release()
        if loader.poll() is None:
            kill_group(loader)
    load(db_env, delivery)
    assert_equal_to_full_refresh(db_env, tmp_path)


def test_a_load_committed_while_a_build_runs_is_built_next_time(db_env, tmp_path):
    feed, parts, delivery = first_part_built(db_env, tmp_path)
    deliver(feed, delivery, parts[1])

    # The build waits on a lock while the load commits under it.
    holder = connect(db_env)
    holder.execute("lock table analytics.songplays in share mode")
    command, dbt_env = dbt_invocation(db_env, tmp_path, "build")
    running = subprocess.Popen(
        command, env=dbt_env, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    try:
        wait_until(
            lambda: holder.info.backend_pid in blocking_pids(db_env),
            "the build to wait on analytics.songplays",
        )
        load(db_env, delivery)
    finally:
        holder.rollback()
        holder.close()
    out, _ = running.communicate(timeout=600)
    assert running.returncode == 0, out[-3000:]
    assert_equal_to_full_refresh(db_env, tmp_path)


def test_corrected_redelivered_and_new_files_between_builds(db_env, tmp_path):
    feed, parts = split_feed(tmp_path)
    delivery = tmp_path / "delivery"
    deliver(feed, delivery, parts[1])
    load(db_env, delivery)
    build(db_env, tmp_path)

    # Files loaded between two builds: a later part, and a late one whose days come
    # before every day built so far (listeners' first plays move earlier).
    deliver(feed, delivery, parts[0] + parts[2])
    load(db_env, delivery)
    assert_equal_to_full_refresh(db_env, tmp_path)

    # An old day delivered again under another name.
    first_day = parts[0][0]
    again = delivery / "log_data" / "redelivered" / f"again-{first_day.name}"
    again.parent.mkdir(parents=True)
    shutil.copy(first_day, again)
    load(db_env, delivery)
    assert_equal_to_full_refresh(db_env, tmp_path)

    # A corrected file: one play becomes a Home page view, another moves to another
    # song, and the last line goes.
    corrected = delivery / parts[1][0].relative_to(feed)
    lines = corrected.read_bytes().split(b"\n")
    plays = [i for i, line in enumerate(lines) if b'"NextSong"' in line]
    home = json.loads(lines[plays[1]])
    home.update(page="Home", song=None, artist=None, length=None)
    lines[plays[1]] = json.dumps(home).encode()
    moved = json.loads(lines[plays[0]])
    other = json.loads(lines[plays[-1]])
    moved.update(song=other["song"], artist=other["artist"], length=other["length"])
    lines[plays[0]] = json.dumps(moved).encode()
    corrected.write_bytes(b"\n".join(lines[:-2]))
    _, reloaded, _ = load_json(db_env, "--data-dir", delivery)
    assert (reloaded["files_loaded"], reloaded["files_replaced"]) == (1, 1), reloaded
    assert_equal_to_full_refresh(db_env, tmp_path)


def dbt_sessions(env: dict[str, str]) -> list[int]:
    with connect(env) as conn:
        return [
            pid
            for (pid,) in conn.execute(
                "select pid from pg_stat_activity where datname = current_database() "
                "and application_name like 'dbt%%'"
            )
        ]
