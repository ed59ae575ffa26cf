"""A feed that changes under the loader: a file changed without its size or
time (--verify), files gone from the feed (reported, then --prune), and a path
that cannot be listed (skipped and named)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feed_lines import make_feed, summary_of
from helpers import (
    MARTS,
    assert_loads_match,
    build,
    connect,
    run_loader,
    warehouse_fingerprint,
)
from landing import (
    EV,
    numbered,
    one_line_said,
    outcomes,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt


def test_verify_catches_a_change_the_stat_skip_misses(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=2, per_day=3)
    day = feed / "log_data" / "2018" / "11" / "2018-11-01-events.json"
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    before = day.stat()
    changed = day.read_bytes().replace(b'"Kaylee"', b'"Kayleu"')
    assert len(changed) == before.st_size and changed != day.read_bytes()
    day.write_bytes(changed)
    os.utime(day, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p leaves it

    skipped = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert skipped["files_loaded"] == 0  # the documented trade-off of the stat skip
    verified = summary_of(run_loader(db_env, "--data-dir", feed, "--verify", "--json"))
    assert verified["files_loaded"] == 1 and verified["files_replaced"] == 1
    with connect(db_env) as conn:
        names = {r[0] for r in conn.execute("select payload->>'firstName' from raw.events")}
    assert names == {"Kayleu", "Kaylee"}  # day 1 changed, day 2 not
    again = summary_of(run_loader(db_env, "--data-dir", feed, "--verify", "--json"))
    assert again["files_loaded"] == 0 and again["files_unchanged"] == 5
    assert len(outcomes(db_env)) == 2 * 3 + 3  # each line once


def test_vanished_files_are_reported_then_pruned(db_env, other_db_env, tmp_path):
    from helpers import generate_feed

    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "4", "--users", "8", "--songs", "30", "--events-per-day", "80")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    build(db_env, tmp_path)
    gone_day = sorted((feed / "log_data").rglob("*.json"))[1]
    gone_song = sorted((feed / "song_data").rglob("*.json"))[0]
    gone = sorted([gone_day.relative_to(feed).as_posix(), gone_song.relative_to(feed).as_posix()])
    gone_day.unlink()
    gone_song.unlink()

    reported = run_loader(db_env, "--data-dir", feed, "--json")
    assert reported.returncode == 0, reported.stderr
    assert summary_of(reported)["files_vanished"] == gone
    assert summary_of(reported)["files_pruned"] == 0
    assert "2 loaded files are no longer in the feed" in reported.stderr
    assert all(name in reported.stderr for name in gone)
    with connect(db_env) as conn:
        (still,) = conn.execute(
            "select count(*) from raw.events where source_file = %s", [gone[0]]
        ).fetchone()
        landed_by = tuple(
            r[0]
            for r in conn.execute(
                "select load_id from raw.load_manifest where source_file = any(%s)", [gone]
            )
        )
    assert still > 0  # raw is an archive by default

    pruned = run_loader(db_env, "--data-dir", feed, "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert summary_of(pruned)["files_pruned"] == 2 and summary_of(pruned)["loads"] == 2
    with connect(db_env) as conn:
        left = conn.execute(
            "select count(*) from (select source_file from raw.events union all "
            "select source_file from raw.songs union all select source_file from raw.rejects "
            "union all select source_file from raw.load_manifest) as t "
            "where source_file = any(%s)",
            [gone],
        ).fetchone()[0]
        prunes = conn.execute(
            "select source_kind, file_count, row_count, reject_count, replaced_file_count "
            "from raw.loads where load_id between %s and %s order by 1",
            [summary_of(pruned)["first_load_id"], summary_of(pruned)["last_load_id"]],
        ).fetchall()
    assert left == 0
    assert prunes == [("events", 0, 0, 0, 1), ("songs", 0, 0, 0, 1)]
    assert_loads_match(db_env, superseded=landed_by)  # they hold less than they landed
    nothing = summary_of(run_loader(db_env, "--data-dir", feed, "--prune", "--json"))
    assert nothing["files_vanished"] == [] and nothing["loads"] == 0

    build(db_env, tmp_path)
    assert run_loader(other_db_env, "--data-dir", feed).returncode == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    build(other_db_env, fresh)
    assert outcomes(db_env) == outcomes(other_db_env)  # raw: the current feed, once
    assert warehouse_fingerprint(db_env, MARTS, load_times=False) == warehouse_fingerprint(
        other_db_env, MARTS, load_times=False
    )


FOLDER_NAME_LENGTH = 250
FILE_NAME = "e" * 200 + ".json"
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")  # 4096 on Linux, its NUL included


def _deep_folder(root: Path, levels: int, n: int) -> None:
    """Folders 250 characters long, `levels` deep (well past PATH_MAX), with an
    event file at every level: made through directory descriptors, as no path
    that long can be opened."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(levels):
            name = f"{level:03d}" + "d" * (FOLDER_NAME_LENGTH - 3)
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            file = os.open(FILE_NAME, os.O_WRONLY | os.O_CREAT, dir_fd=fd)
            os.write(file, numbered(n + level) + b"\n")
            os.close(file)
    finally:
        os.close(fd)


def _what_can_be_opened(root: Path, levels: int) -> tuple[int, int]:
    """For _deep_folder(root, levels): how many of its files have a path that fits
    in PATH_MAX, and how many paths cannot be listed or opened (a file too long,
    then the folder beside it; or only a folder) before the walk can go no deeper.
    Worked out from the length of root, which depends on where the test runs."""
    fits = 0
    unreadable = 0
    for level in range(levels):
        folder = len(str(root)) + (FOLDER_NAME_LENGTH + 1) * (level + 1)
        if folder >= PATH_MAX:
            return fits, unreadable + 1
        if folder + 1 + len(FILE_NAME) < PATH_MAX:
            fits += 1
        else:
            unreadable += 1
    return fits, unreadable


def test_a_path_that_cannot_be_listed_is_skipped_and_named(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=2, per_day=3)
    logs = feed / "log_data"
    _deep_folder(logs, 20, 100)
    fits, cannot = _what_can_be_opened(logs, 20)
    assert 0 < fits < 20 and cannot > 0  # the case the test is for: some fit, some do not
    result = run_loader(db_env, "--data-dir", feed, "--json")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    summary = summary_of(result)
    unreadable = summary["paths_unreadable"]
    assert len(unreadable) == cannot
    assert all(name.startswith("log_data/000ddd") for name in unreadable)
    assert all(f"skipped {name}: cannot be listed" in result.stderr for name in unreadable)
    assert "exit code 3" in one_line_said(result.stderr)
    landed = outcomes(db_env)
    deep_files = [name for name, _ in landed if name.startswith("log_data/000")]
    assert len(deep_files) == fits
    assert sum(where == EV for where in landed.values()) == 2 * 3 + fits
    assert_loads_match(db_env)
    # What could not be listed is unknown, not gone: --prune leaves it alone.
    again = run_loader(db_env, "--data-dir", feed, "--prune", "--json")
    assert again.returncode == 3
    assert summary_of(again)["files_vanished"] == []
