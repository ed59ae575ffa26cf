"""Faults against a real PostgreSQL: nothing lost, nothing doubled, old marts kept.

Every fault is made to happen at a known point rather than after a guessed
delay: a test connection holds an uncommitted row with the key of the last log
file's first line, so the loader's COPY waits on it mid-load (earlier files
already written in its transaction, or committed by earlier batches). The test
waits until PostgreSQL shows the loader blocked by that connection, then strikes.

The loader runs in a session of its own and is killed by process group, so a
loader that spawns worker processes (one coordinator, several workers) dies
whole, as it would under `kill -9 -PGID` or an OOM kill of the job.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from helpers import (
    WAIT_SECONDS,
    assert_loads_match,
    connect,
    generate_feed,
    kill_group,
    run_loader,
    scalar,
    start_loader,
    wait_until,
)
from interruptions import Blocker, assert_nothing_half_loaded, other_backends_gone

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

FEED = ("--days", "4", "--users", "10", "--songs", "40", "--events-per-day", "150")


def expected_lines(feed: Path) -> set[tuple[str, int]]:
    """(source_file, line_number) of every non-blank line of every log file."""
    return {
        (f"log_data/{path.relative_to(feed / 'log_data').as_posix()}", number)
        for path in (feed / "log_data").rglob("*.json")
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1)
        if line.strip()
    }


def landed_lines(env: dict[str, str]) -> list[tuple[str, int]]:
    with connect(env) as conn:
        return conn.execute(
            "select source_file, line_number from raw.events "
            "union all select source_file, line_number from raw.rejects"
        ).fetchall()


def assert_exactly_once(env: dict[str, str], feed: Path) -> None:
    landed = landed_lines(env)
    assert len(landed) == len(set(landed)), "a line landed twice"
    assert set(landed) == expected_lines(feed)
    with connect(env) as conn:
        songs = scalar(conn, "select count(*) from raw.songs")
    assert songs == len(list((feed / "song_data").rglob("*.json")))


def last_log_file(feed: Path) -> str:
    return max(name for name, _ in expected_lines(feed))


def manifest_files(env: dict[str, str]) -> set[str]:
    with connect(env) as conn:
        return {r[0] for r in conn.execute("select source_file from raw.load_manifest")}


@pytest.fixture
def blocker_factory() -> Iterator[Callable[[dict[str, str], str], Blocker]]:
    made: list[Blocker] = []

    def make(env: dict[str, str], source_file: str) -> Blocker:
        blocker = Blocker(env, source_file)
        made.append(blocker)
        return blocker

    yield make
    for blocker in made:
        with contextlib.suppress(psycopg.Error):  # its server may have been stopped
            blocker.release()


def prepared_feed(env: dict[str, str], tmp_path: Path) -> Path:
    """A generated feed, and the raw schema already created (by a loader run on nothing)."""
    feed = tmp_path / "feed"
    generate_feed(feed, *FEED)
    empty = tmp_path / "empty"
    empty.mkdir()
    created = run_loader(env, "--log-data", empty)
    assert created.returncode == 0, created.stderr
    return feed


def test_kill_9_mid_load_then_rerun_loads_every_line_once(db_env, tmp_path, blocker_factory):
    feed = prepared_feed(db_env, tmp_path)
    blocker = blocker_factory(db_env, last_log_file(feed))
    loader = start_loader(db_env, tmp_path / "loader.err", "--data-dir", feed)
    wait_until(blocker.blocked_pids, "the loader to block on the held row")
    # Mid-load: some files committed (the song batch, or other workers' files) ...
    wait_until(lambda: manifest_files(db_env), "a first batch to commit")
    kill_group(loader)
    blocker.release()
    wait_until(lambda: other_backends_gone(db_env), "the killed loader's session to end")

    assert_nothing_half_loaded(db_env)
    # ... and the blocked one not: every load in raw.loads is whole, and the
    # killed batch left no raw.loads row.
    assert last_log_file(feed) not in manifest_files(db_env)
    assert_loads_match(db_env)

    rerun = run_loader(db_env, "--data-dir", feed)
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(db_env, feed)
    assert_nothing_half_loaded(db_env)
    assert_loads_match(db_env)


@pytest.fixture
def private_server(tmp_path) -> Iterator[tuple[dict[str, str], Path]]:
    """A server of this test's own, safe to stop: same binaries as the suite's server."""
    from sparkify import embedded_pg

    pgdata = tmp_path / "pg"
    env = {**os.environ, **embedded_pg.start(pgdata=pgdata)}
    env.pop("PGPASSWORD", None)
    yield env, pgdata
    embedded_pg.stop(pgdata, mode="immediate")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_stopped_mid_load(private_server, tmp_path, blocker_factory, mode):
    """fast: an administrator's stop; immediate: like a crash (recovery at the next start)."""
    from sparkify import embedded_pg

    env, pgdata = private_server
    feed = prepared_feed(env, tmp_path)
    blocker = blocker_factory(env, last_log_file(feed))
    loader = start_loader(env, tmp_path / "loader.err", "--data-dir", feed)
    wait_until(blocker.blocked_pids, "the loader to block on the held row")

    assert embedded_pg.stop(pgdata, mode=mode)
    out, _ = loader.communicate(timeout=WAIT_SECONDS)
    stderr = (tmp_path / "loader.err").read_text()
    assert loader.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "PostgreSQL" in line]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0]  # the last word, in one line
    assert "re-run" in errors[0], stderr
    assert out == ""  # no summary: the load did not finish

    embedded_pg.start(pgdata=pgdata)
    assert_nothing_half_loaded(env)
    assert_loads_match(env)
    rerun = run_loader(env, "--data-dir", feed)
    assert rerun.returncode == 0, rerun.stderr
    assert_exactly_once(env, feed)
    assert_loads_match(env)


def event_rows(summary: str) -> int:
    found = re.search(r"(\d+) event rows", summary)
    assert found, summary
    return int(found.group(1))


def test_second_loader_waits_and_says_so(db_env, tmp_path, blocker_factory):
    feed = prepared_feed(db_env, tmp_path)
    blocker = blocker_factory(db_env, last_log_file(feed))
    first = start_loader(db_env, tmp_path / "first.err", "--data-dir", feed)
    wait_until(blocker.blocked_pids, "the first loader to block on the held row")
    second = start_loader(db_env, tmp_path / "second.err", "--data-dir", feed)
    said = wait_until(
        lambda: re.search(
            r"another load.*(wait|skip)", (tmp_path / "second.err").read_text(), re.I
        ),
        "the second loader to say it waits for the first",
    )
    assert said
    blocker.release()
    first_out, _ = first.communicate(timeout=WAIT_SECONDS)
    second_out, _ = second.communicate(timeout=WAIT_SECONDS)
    assert first.returncode == 0, (tmp_path / "first.err").read_text()
    assert second.returncode == 0, (tmp_path / "second.err").read_text()
    assert event_rows(first_out) + event_rows(second_out) == len(expected_lines(feed))
    assert_exactly_once(db_env, feed)


def test_two_loaders_started_together_load_each_line_once(db_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, *FEED)
    loaders = [
        start_loader(db_env, tmp_path / f"loader{n}.err", "--data-dir", feed) for n in range(2)
    ]
    outputs = [loader.communicate(timeout=WAIT_SECONDS)[0] for loader in loaders]
    assert [loader.returncode for loader in loaders] == [0, 0]
    assert sum(event_rows(out) for out in outputs) == len(expected_lines(feed))
    assert_exactly_once(db_env, feed)
