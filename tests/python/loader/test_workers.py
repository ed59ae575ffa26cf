"""Parallel and batched loads against a real PostgreSQL: exactly the rows one worker lands.

Each test compares whole tables, row by row, between a load with several workers
and small batches and a load with one worker, or checks the manifest against
the landing tables. None of them measures time: speed is the benchmark's job
(benchmarks/ingest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from feed_lines import event_line, make_feed, summary_of
from helpers import (
    assert_loads_match,
    connect,
    generate_feed,
    landed,
    manifest_rows,
    run_loader,
    scalar,
    write_lines,
)
from sparkify.loader.schema import ensure_schema

# Small batches so that even a small feed is spread over several workers.
PARALLEL = ("--workers", "3", "--batch-files", "3", "--batch-mb", "1")
SINGLE = ("--workers", "1")


@pytest.fixture(scope="module")
def faulty_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated feed with every kind of damage the generator knows."""
    feed = tmp_path_factory.mktemp("parallel") / "feed"
    generate_feed(
        feed, "--days", "8", "--users", "20", "--songs", "40", "--events-per-day", "80", "--faults"
    )
    return feed


def snapshot(env: dict[str, str]) -> dict[str, Any]:
    """Every landed row, reject and manifest entry, in a fixed order (load times left out)."""
    return {**landed(env), "manifest": manifest_rows(env)}


def manifest_agrees_with_tables(env: dict[str, str]) -> None:
    """Each manifest row counts exactly the rows and rejects its file has, and no
    file has rows without a manifest row (nothing half-loaded, nothing orphaned)."""
    with connect(env) as conn:
        disagreements = conn.execute(
            """
            with landed as (
                select source_file, count(*) as n from raw.events group by 1
                union all
                select source_file, count(*) from raw.songs group by 1
            ),
            rejected as (select source_file, count(*) as n from raw.rejects group by 1),
            files as (
                select source_file from landed union select source_file from rejected
            )
            select coalesce(m.source_file, f.source_file)
            from raw.load_manifest as m
            full join files as f on f.source_file = m.source_file
            left join landed as l on l.source_file = coalesce(m.source_file, f.source_file)
            left join rejected as r on r.source_file = coalesce(m.source_file, f.source_file)
            where m.source_file is null
                or m.row_count <> coalesce(l.n, 0)
                or m.reject_count <> coalesce(r.n, 0)
            """
        ).fetchall()
    assert disagreements == []


def test_parallel_load_lands_exactly_what_one_worker_lands(faulty_feed, db_env, other_db_env):
    single = summary_of(run_loader(db_env, "--data-dir", faulty_feed, *SINGLE, "--json"))
    parallel = summary_of(run_loader(other_db_env, "--data-dir", faulty_feed, *PARALLEL, "--json"))
    assert (single["workers"], parallel["workers"]) == (1, 3)
    expected, got = snapshot(db_env), snapshot(other_db_env)
    assert got == expected
    # The feed is not trivial: both kinds of file, and rejects of several reasons.
    assert len(got["events"]) > 500 and len(got["songs"]) == 40
    assert len({reason for _, _, _, reason, _ in got["rejects"]}) >= 4
    # The summary is the same too (the loads, other batch sizes, and the time aside).
    assert counts_said(single) == counts_said(parallel)
    with connect(other_db_env) as conn:
        loads = conn.execute("select count(*) from raw.loads").fetchone()[0]
    assert loads > 2
    assert (parallel["loads"], parallel["first_load_id"], parallel["last_load_id"]) == (
        loads,
        1,
        loads,
    )
    manifest_agrees_with_tables(other_db_env)
    assert_loads_match(db_env)
    assert_loads_match(other_db_env)


def counts_said(summary: dict[str, Any]) -> dict[str, Any]:
    """What a summary says of the files and lines, not of how they were loaded."""
    how = ("loads", "first_load_id", "last_load_id", "workers", "batches")
    return {key: value for key, value in summary.items() if key not in how and "seconds" not in key}


def test_parallel_rerun_is_a_no_op_and_replaces_changed_files(tmp_path, db_env, other_db_env):
    feed = make_feed(tmp_path / "feed", days=9, per_day=7)
    assert run_loader(db_env, "--data-dir", feed, *PARALLEL).returncode == 0
    before = snapshot(db_env)
    again = summary_of(run_loader(db_env, "--data-dir", feed, *PARALLEL, "--json"))
    assert (again["files_loaded"], again["loads"]) == (0, 0)
    assert snapshot(db_env) == before
    # Change two days, add one, touch one without changing it.
    day = feed / "log_data" / "2018" / "11"
    write_lines(
        day / "2018-11-02-events.json", [event_line(song="new", itemInSession=i) for i in range(3)]
    )
    write_lines(day / "2018-11-05-events.json", [b"not json", event_line(itemInSession=1)])
    write_lines(day / "2018-11-30-events.json", [event_line(itemInSession=i) for i in range(4)])
    touched = day / "2018-11-07-events.json"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = summary_of(run_loader(db_env, "--data-dir", feed, *PARALLEL, "--json"))
    assert (third["files_loaded"], third["files_replaced"]) == (3, 2)
    # The same final state as one worker loading the final files once.
    assert run_loader(other_db_env, "--data-dir", feed, *SINGLE).returncode == 0
    assert snapshot(db_env) == snapshot(other_db_env)
    manifest_agrees_with_tables(db_env)


def test_touched_file_is_hashed_not_reloaded(tmp_path, db_env):
    feed = make_feed(tmp_path / "feed", days=2, per_day=3)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    path = feed / "log_data" / "2018" / "11" / "2018-11-01-events.json"
    name = "log_data/2018/11/2018-11-01-events.json"
    with connect(db_env) as conn:
        loaded_at, old_stamp = conn.execute(
            "select loaded_at, mtime_ns from raw.load_manifest where source_file = %s", [name]
        ).fetchone()
    new_stamp = old_stamp + 5 * 10**9
    os.utime(path, ns=(new_stamp, new_stamp))
    again = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (again["files_loaded"], again["files_unchanged"]) == (0, 5)
    with connect(db_env) as conn:
        after = conn.execute(
            "select loaded_at, mtime_ns from raw.load_manifest where source_file = %s", [name]
        ).fetchone()
    assert after == (loaded_at, new_stamp)  # same load, new stamp remembered


def test_manifest_of_an_earlier_loader_version_still_works(tmp_path, db_env):
    """A landing database from before mtime_ns: files are compared by checksum, once."""
    feed = make_feed(tmp_path / "feed", days=3, per_day=2)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    with connect(db_env) as conn:
        conn.execute("alter table raw.load_manifest drop column mtime_ns")
        conn.commit()
    again = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (again["files_loaded"], again["files_unchanged"]) == (0, 6)
    with connect(db_env) as conn:
        stamps = conn.execute("select count(mtime_ns) from raw.load_manifest").fetchone()[0]
    assert stamps == 6  # restamped, so the next run needs no hashing


def test_worker_failure_stops_the_load_in_one_line(tmp_path, db_env, other_db_env):
    feed = make_feed(tmp_path / "feed", days=12, per_day=5)
    with connect(db_env) as conn:
        conn.autocommit = True
        ensure_schema(conn)
        # PostgreSQL refuses one file's rows: the worker that has it fails.
        conn.execute(
            """
            create function raw.refuse_day_07() returns trigger language plpgsql as $$
            begin
                raise exception 'test refuses %', new.source_file;
            end $$;
            create trigger refuse_day_07 before insert on raw.events for each row
            when (new.source_file like '%2018-11-07%') execute function raw.refuse_day_07();
            """
        )
    failed = run_loader(db_env, "--data-dir", feed, *PARALLEL)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("load_raw: worker ") and "test refuses" in last
    assert "re-run to finish" in last
    manifest_agrees_with_tables(db_env)
    with connect(db_env) as conn:
        loaded = [r[0] for r in conn.execute("select source_file from raw.load_manifest")]
        assert not any("2018-11-07" in name for name in loaded)
        workers = _worker_connections(conn)
    assert workers == 0, "a worker of the failed load is still connected"
    # Fixed, a re-run finishes the job: the result is what one clean load gives.
    with connect(db_env) as conn:
        conn.execute("drop trigger refuse_day_07 on raw.events")
        conn.commit()
    assert run_loader(db_env, "--data-dir", feed, *PARALLEL).returncode == 0
    assert run_loader(other_db_env, "--data-dir", feed, *SINGLE).returncode == 0
    assert snapshot(db_env) == snapshot(other_db_env)


def _worker_connections(conn: psycopg.Connection, wait_seconds: float = 10.0) -> int:
    """Connections of loader workers to this database, once they had time to close."""
    deadline = time.monotonic() + wait_seconds
    while True:
        count = scalar(
            conn,
            "select count(*) from pg_stat_activity "
            "where datname = current_database() and application_name = %s",
            ["sparkify load_raw worker"],
        )
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def test_second_loader_waits_for_the_first_with_workers(tmp_path, db_env):
    feed = make_feed(tmp_path / "feed", days=6, per_day=4)
    with connect(db_env) as holder:
        holder.autocommit = True
        ensure_schema(holder)
        holder.execute("select pg_advisory_lock(hashtext('sparkify.load_raw'))")
        loader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sparkify.loader",
                "--data-dir",
                str(feed),
                *PARALLEL,
            ],
            env=db_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # While the lock is held, the loader waits and lands nothing.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                waiting = holder.execute(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.1)
            assert waiting == 1
            assert holder.execute("select count(*) from raw.load_manifest").fetchone()[0] == 0
        finally:
            holder.execute("select pg_advisory_unlock(hashtext('sparkify.load_raw'))")
        out, err = loader.communicate(timeout=120)
    assert loader.returncode == 0, err
    assert "another load_raw is running" in err
    assert "24 event rows" in out


def test_suspect_line_does_not_send_the_file_down_the_slow_path(tmp_path, db_env):
    feed = tmp_path / "feed"
    lines = [event_line(itemInSession=i) for i in range(200)]
    lines[50] = b'{"userId": "1", "song": "nul \\u0000 inside"}'
    lines[120] = b'{"userId": "1", "song": "lone \\ud800 surrogate"}'
    lines[150] = b'{"userId": "1", "song": "pair \\ud83d\\ude00 is fine"}'
    write_lines(feed / "log_data" / "2018-11-01-events.json", lines)
    result = run_loader(db_env, "--data-dir", feed)
    assert result.returncode == 0, result.stderr
    assert "line by line" not in result.stderr  # only the suspects were judged apart
    with connect(db_env) as conn:
        rejects = conn.execute("select line_number, reason from raw.rejects order by 1").fetchall()
        landed = conn.execute("select count(*) from raw.events").fetchone()[0]
    assert rejects == [(51, "jsonb_refused"), (121, "jsonb_refused")]
    assert landed == 198
    manifest_agrees_with_tables(db_env)
