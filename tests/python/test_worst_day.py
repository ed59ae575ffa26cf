"""The loader on its worst day, round two (issue 13), against a real PostgreSQL.

Deep JSON, server errors told apart by SQLSTATE and the DBA's timeouts, lines
over --max-line-bytes, TEMP revoked from PUBLIC, --verify, files gone from the
feed and --prune, a path that cannot be listed, CR-only line endings, signals,
and duplicate keys. After each, every non-blank input line is in
raw.events/raw.songs or raw.rejects exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from database_roles import as_role, run_setup_roles
from feed_lines import SONG, event_line, make_feed
from helpers import (
    REPO_ROOT,
    WAIT_SECONDS,
    assert_loads_match,
    build,
    connect,
    kill_group,
    mart_contents,
    run_loader,
    scalar,
    start_loader,
    wait_until,
    write_lines,
)
from interruptions import Blocker, assert_nothing_half_loaded
from sparkify.loader.errors import describe

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

EV = "events"  # the line lands in raw.events
SONG_ROW = "songs"  # the song file lands in raw.songs
LIMIT = 512  # MAX_NESTING_DEPTH: the deepest line that lands, on both engines
DEEP = 10_000  # PostgreSQL's jsonb takes it, Spark's readers do not: too deep for both
DEEPER = 100_000  # PostgreSQL refuses it: "stack depth limit exceeded"


def numbered(n: int, **changes: object) -> bytes:
    return event_line(itemInSession=n, ts=1541106106796 + n * 1000, **changes)


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def outcomes(env: dict[str, str]) -> dict[tuple[str, int], str]:
    """Where each landed line is: 'events', 'songs', or its reject reason."""
    with connect(env) as conn:
        rows = conn.execute(
            "select source_file, line_number, 'events' from raw.events "
            "union all select source_file, line_number, 'songs' from raw.songs "
            "union all select source_file, line_number, reason from raw.rejects"
        ).fetchall()
    found: dict[tuple[str, int], str] = {}
    for name, number, where in rows:
        assert (name, number) not in found, f"{name}:{number} landed twice"
        found[(name, number)] = where
    return found


def expected_outcomes(root: Path, cases: dict[str, list[str]]) -> dict[tuple[str, int], str]:
    """The outcome of each non-blank line of each case file (numbered by LF)."""
    expected = {}
    for relative, wanted in cases.items():
        data = (root / relative).read_bytes()
        if relative.startswith("song_data/"):
            numbers = [1] if data.strip() else []
        else:
            numbers = [n for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
        assert len(numbers) == len(wanted), relative
        expected.update({(relative, n): w for n, w in zip(numbers, wanted, strict=True)})
    return expected


def loader_json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def one_line_said(stderr: str) -> str:
    """The loader's last word: one line, no traceback."""
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


# --- case 1: deeply nested JSON ------------------------------------------------


def test_deep_json_is_a_reject_and_the_rest_loads(db_env, tmp_path):
    """One limit on both engines: nested 512 deep lands, 513 deep is too_deep,
    on the fast path, the careful path and in song files (jsonb took 10,000
    levels, which Spark reads as null: a play on one engine, nothing on the other)."""
    feed = tmp_path / "feed"
    song = json.dumps(SONG).encode()

    # A play whose extra value nests the whole line `depth` deep.
    def deep_play(n: int, depth: int) -> bytes:
        return numbered(n)[:-1] + b', "extra": ' + deep_object(depth - 1) + b"}"

    cases = {
        # 10k nested arrays: Python's json gives up (RecursionError), not an object
        "log_data/deep-array.json": (
            [numbered(1), deep_array(DEEP), numbered(2)],
            [EV, "too_deep", EV],
        ),
        # at the limit and one over it, alone (the fast path)
        "log_data/at-the-limit.json": (
            [numbered(3), deep_object(LIMIT), deep_play(8, LIMIT)],
            [EV, EV, EV],
        ),
        "log_data/over-the-limit.json": (
            [numbered(9), deep_object(LIMIT + 1), deep_play(10, LIMIT + 1), deep_object(DEEP)],
            [EV, "too_deep", "too_deep", "too_deep"],
        ),
        # the same beside a line PostgreSQL refuses: the careful path, same outcome
        "log_data/deep-careful.json": (
            [numbered(4), deep_object(LIMIT), deep_object(LIMIT + 1), b'{"ts": NaN}', numbered(5)],
            [EV, EV, "too_deep", "not_json", EV],
        ),
        # 100k levels: PostgreSQL would run out of stack; the loader stops it first
        "log_data/deeper.json": (
            [numbered(6), deep_object(DEEPER), numbered(7)],
            [EV, "too_deep", EV],
        ),
    }
    for relative, (lines, _) in cases.items():
        write_lines(feed / relative, lines, trailing_newline=True)
    # Song files share a batch: deep ones, a refused one (careful path), a deeper one.
    songs = feed / "song_data" / "A"
    songs.mkdir(parents=True)

    def deep_song(depth: int) -> bytes:
        return song[:-1] + b', "deep": ' + deep_object(depth - 1) + b"}"

    (songs / "TRLIMIT.json").write_bytes(deep_song(LIMIT))
    (songs / "TROVER.json").write_bytes(deep_song(LIMIT + 1))
    (songs / "TRDEEP.json").write_bytes(deep_song(DEEP))
    (songs / "TRNAN.json").write_bytes(b'{"duration": NaN}')
    (songs / "TRDEEPER.json").write_bytes(deep_object(DEEPER))
    (songs / "TRDEEPARRAY.json").write_bytes(deep_array(DEEP))
    (songs / "TROK.json").write_bytes(song)
    song_cases = {
        "song_data/A/TRLIMIT.json": [SONG_ROW],
        "song_data/A/TROVER.json": ["too_deep"],
        "song_data/A/TRDEEP.json": ["too_deep"],
        # (a song file PostgreSQL refuses is labelled truncated: an older rule)
        "song_data/A/TRNAN.json": ["truncated"],
        "song_data/A/TRDEEPER.json": ["too_deep"],
        "song_data/A/TRDEEPARRAY.json": ["too_deep"],
        "song_data/A/TROK.json": [SONG_ROW],
    }
    wanted = {relative: w for relative, (_, w) in cases.items()} | song_cases

    result = run_loader(db_env, "--data-dir", feed, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert outcomes(db_env) == expected_outcomes(feed, wanted)
    with connect(db_env) as conn:
        details = dict(
            conn.execute(
                "select source_file || ':' || line_number, detail from raw.rejects "
                "where reason = 'too_deep'"
            ).fetchall()
        )
    assert details["log_data/deeper.json:2"].startswith(f"nested {DEEPER} levels deep")
    assert details["log_data/over-the-limit.json:2"].startswith(f"nested {LIMIT + 1} levels")
    assert details["song_data/A/TROVER.json:1"].startswith(f"nested {LIMIT + 1} levels")
    assert_loads_match(db_env)
    again = run_loader(db_env, "--data-dir", feed)  # every batch committed: nothing to do
    assert again.returncode == 0 and "loaded 0 files" in again.stdout, again.stderr
    build(db_env, tmp_path)  # 512-deep payloads in raw.events and raw.songs


# --- case 2: server-side errors, by SQLSTATE; the DBA's timeouts -------------


def _statement_timeout(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("set statement_timeout = '50ms'")
    conn.execute("select pg_sleep(2)")


def _lock_timeout(conn: psycopg.Connection, env: dict[str, str]) -> None:
    with connect(env) as holder:
        holder.execute("create table if not exists held (x int)")
        holder.commit()
        holder.execute("lock table held")
        conn.execute("set lock_timeout = '50ms'")
        try:
            conn.execute("lock table held")
        finally:
            holder.rollback()


def _stack_depth(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("select %s::jsonb", [deep_array(DEEPER).decode()])


def _terminated(conn: psycopg.Connection, env: dict[str, str]) -> None:
    with connect(env) as other:
        other.execute("select pg_terminate_backend(%s)", [conn.info.backend_pid])
        other.commit()
    conn.execute("select 1")


def _idle_in_transaction(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("set idle_in_transaction_session_timeout = '100ms'")
    conn.execute("select 1")
    time.sleep(1)
    conn.execute("select 1")


@pytest.mark.parametrize(
    ("cause", "said"),
    [
        (_statement_timeout, "SQLSTATE 57014"),
        (_lock_timeout, "SQLSTATE 55P03"),
        (_stack_depth, "exceeds a PostgreSQL limit"),
        (_terminated, "SQLSTATE 57P01"),
        (_idle_in_transaction, "ended an idle transaction"),
    ],
    ids=["statement_timeout", "lock_timeout", "stack_depth", "terminated", "idle_in_transaction"],
)
def test_server_errors_are_told_apart(db_env, cause, said):
    """Real errors from the server, each an OperationalError or worse to psycopg:
    the loader's one line says which it is, not 'lost the connection'."""
    with connect(db_env) as conn, pytest.raises(psycopg.Error) as raised:
        cause(conn, db_env)
    text = describe(raised.value)
    assert said in text, text
    assert "lost the connection" not in text, text


def test_cancelled_load_says_so(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0  # the schema
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    loader = start_loader(db_env, tmp_path / "err", "--data-dir", feed, "--workers", "1")
    try:
        (pid,) = wait_until(blocker.blocked_pids, "the loader to block on the held row")
        with connect(db_env) as conn:
            conn.execute("select pg_cancel_backend(%s)", [pid])
        loader.wait(timeout=WAIT_SECONDS)
    finally:
        blocker.release()
        if loader.poll() is None:
            kill_group(loader)
    last = one_line_said((tmp_path / "err").read_text())
    assert loader.returncode == 1
    assert "cancelled" in last and "SQLSTATE 57014" in last and "re-run" in last, last
    assert_nothing_half_loaded(db_env)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0


def _blocked_for(env: dict[str, str], pid: int) -> float:
    """Seconds the backend has been running its current statement."""
    with connect(env) as conn:
        seconds = scalar(
            conn,
            "select extract(epoch from now() - query_start) from pg_stat_activity where pid = %s",
            [pid],
        )
    return float(seconds or 0)


def test_dba_timeouts_do_not_stop_a_load_and_a_second_loader_waits(db_env, tmp_path):
    """statement_timeout, lock_timeout and idle_in_transaction_session_timeout set on
    the database: the loader's sessions set them to 0, so a load blocked for longer
    than all three finishes, and a second loader waits for the first."""
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0  # the schema
    # Connected before the settings: the test's own idle transaction is not ended.
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    with connect(db_env) as conn:
        conn.autocommit = True
        database = sql.Identifier(db_env["PGDATABASE"])
        for setting in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            conn.execute(
                sql.SQL("alter database {} set {} = '500ms'").format(
                    database, sql.Identifier(setting)
                )
            )
    first = start_loader(db_env, tmp_path / "first.err", "--data-dir", feed, "--workers", "2")
    second = None
    try:
        (pid,) = wait_until(blocker.blocked_pids, "the first loader to block on the held row")
        second = start_loader(db_env, tmp_path / "second.err", "--data-dir", feed)
        wait_until(
            lambda: "another load_raw is running" in (tmp_path / "second.err").read_text(),
            "the second loader to say it waits",
        )
        # Well past every timeout: the first loader's statement and transaction,
        # and the second loader's wait for the lock.
        wait_until(
            lambda: (
                first.poll() is not None
                or second.poll() is not None
                or _blocked_for(db_env, pid) > 3
            ),
            "3 s of waiting (or a loader to give up)",
        )
        assert first.poll() is None and second.poll() is None
    finally:
        blocker.release()
    first.wait(timeout=WAIT_SECONDS)
    second.wait(timeout=WAIT_SECONDS)
    assert first.returncode == 0, (tmp_path / "first.err").read_text()
    assert second.returncode == 0, (tmp_path / "second.err").read_text()
    assert len(outcomes(db_env)) == 3 * 20 + 3
    assert_loads_match(db_env)


# --- case 3: lines too long ----------------------------------------------------


def line_of(size: int, n: int) -> bytes:
    """A valid event of exactly `size` bytes, padded in its song title (the field
    staging works hardest on: mojibake repair and the match key)."""
    base = numbered(n, song="")
    line = numbered(n, song="s" * (size - len(base)))
    assert len(line) == size
    return line


def test_max_line_bytes(db_env, tmp_path):
    feed = tmp_path / "feed"
    limit = 2048
    song_limit = json.dumps(SONG).encode()
    cases = {
        "log_data/long.json": (
            [numbered(1), line_of(limit, 2), line_of(limit + 1, 3), numbered(4)],
            [EV, EV, "too_long", EV],
        ),
        # the careful path (a refused line in the batch) gives the same outcomes
        "log_data/long-careful.json": (
            [line_of(limit + 500, 5), b'{"ts": NaN}', line_of(limit, 6)],
            ["too_long", "not_json", EV],
        ),
        # the last line, unterminated, over the limit: too long, not truncated
        "log_data/long-last.json": ([numbered(7), line_of(limit * 3, 8)[:-1]], [EV, "too_long"]),
    }
    for relative, (lines, _) in cases.items():
        write_lines(feed / relative, lines)
    (feed / "song_data").mkdir()
    (feed / "song_data" / "TRBIG.json").write_bytes(
        song_limit[:-1] + b', "pad": "' + b"p" * limit + b'"}'
    )
    wanted = {r: w for r, (_, w) in cases.items()} | {"song_data/TRBIG.json": ["too_long"]}
    result = run_loader(db_env, "--data-dir", feed, "--max-line-bytes", "2K", "--json")
    assert result.returncode == 0, result.stderr
    assert outcomes(db_env) == expected_outcomes(feed, wanted)
    with connect(db_env) as conn:
        kept = conn.execute(
            "select line, detail from raw.rejects "
            "where source_file = 'log_data/long.json' and line_number = 3"
        ).fetchone()
    assert bytes(kept[0]) == line_of(limit + 1, 3)  # the bytes as read
    assert "over the limit of 2048 (--max-line-bytes)" in kept[1]
    assert_loads_match(db_env)


def test_a_line_at_the_default_limit_lands_and_dbt_builds(db_env, tmp_path):
    """64 MB, the default: the warehouse builds with such a line (a 200 MB line
    made every build fail in staging). One byte more is a reject."""
    limit = 64 * 2**20
    feed = tmp_path / "feed"
    write_lines(
        feed / "log_data" / "big.json",
        [numbered(1), line_of(limit, 2), line_of(limit + 1, 3)],
        trailing_newline=True,
    )
    (feed / "song_data").mkdir()
    (feed / "song_data" / "TROK.json").write_text(json.dumps(SONG))
    result = run_loader(db_env, "--data-dir", feed, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert outcomes(db_env) == {
        ("log_data/big.json", 1): EV,
        ("log_data/big.json", 2): EV,
        ("log_data/big.json", 3): "too_long",
        ("song_data/TROK.json", 1): SONG_ROW,
    }
    build(db_env, tmp_path)
    with connect(db_env) as conn:
        (title,) = conn.execute(
            "select max(length(song_title)) from staging.stg_sparkify__events"
        ).fetchone()
    assert title > 60 * 2**20


# Runs a command and writes its peak resident memory (KiB; of it and the
# processes it waited for) to a file. A small process of its own: a child's
# peak counts its parent's memory at the fork, and pytest's is large.
_PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); sys.exit(code)"
)


def run_loader_peak_rss(
    env: dict[str, str], peak_file: Path, *args: str | Path
) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the loader as a user would: what it said, and the peak resident
    memory of it and its workers in MiB, as the kernel counted it."""
    loader = [sys.executable, "-m", "sparkify.loader", *map(str, args)]
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(peak_file), *loader],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, int(peak_file.read_text()) // 1024


def test_a_gz_that_inflates_to_one_huge_line_is_too_long_in_bounded_memory(db_env, tmp_path):
    """Issue 23: a .json.gz of a few hundred KB inflating to a 300 MB line (an
    event log), and a song .json.gz inflating to a 300 MB document. Each line
    over --max-line-bytes is counted, not kept: a too_long reject with its
    number and length that keeps its first MiB; the lines around it land; and
    the loader's memory stays far under the line's size (it held the whole
    line, then copies of it)."""
    size = 300 * 2**20
    filler = b"y" * 2**20

    def gz_of(head: bytes, tail: bytes) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
        pieces = [head, *[filler] * (size // len(filler)), tail]
        return b"".join([*map(packer.compress, pieces), packer.flush()])

    feed = tmp_path / "feed"
    (feed / "log_data").mkdir(parents=True)
    (feed / "song_data").mkdir()
    log = feed / "log_data" / "bomb.json.gz"
    head = numbered(1) + b"\n" + numbered(2)[:-1] + b', "pad": "'
    log.write_bytes(gz_of(head, b'"}\n' + numbered(3) + b"\n"))
    (feed / "song_data" / "TRBOMB.json.gz").write_bytes(gz_of(b'{"pad": "', b'"}'))
    (feed / "song_data" / "TROK.json").write_text(json.dumps(SONG))
    assert log.stat().st_size < 2**20
    line_length = len(numbered(2)[:-1] + b', "pad": "') + size + len(b'"}')
    song_length = len(b'{"pad": "') + size + len(b'"}')

    result, peak = run_loader_peak_rss(
        db_env, tmp_path / "peak", "--data-dir", feed, "--workers", "1", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # About 120 MiB: the loader's own, a 64 MB limit's worth of the line, blocks
    # in flight. Keeping the lines whole took 949 MiB here, and grows with them.
    assert peak < 300, f"peak RSS {peak} MiB"
    assert outcomes(db_env) == {
        ("log_data/bomb.json.gz", 1): EV,
        ("log_data/bomb.json.gz", 2): "too_long",
        ("log_data/bomb.json.gz", 3): EV,
        ("song_data/TRBOMB.json.gz", 1): "too_long",
        ("song_data/TROK.json", 1): SONG_ROW,
    }
    summary = loader_json(result)
    assert (summary["event_rows"], summary["song_rows"], summary["rejects"]) == (2, 1, 2)
    with connect(db_env) as conn:
        kept = {
            name: (length, detail)
            for name, length, detail in conn.execute(
                "select source_file, length(line), detail from raw.rejects "
                "where reason = 'too_long'"
            )
        }
    for name, length in (
        ("log_data/bomb.json.gz", line_length),
        ("song_data/TRBOMB.json.gz", song_length),
    ):
        kept_bytes, detail = kept[name]
        assert kept_bytes == 2**20, name
        assert detail.startswith(f"{length} bytes, over the limit of {64 * 2**20}"), detail
    assert_loads_match(db_env)


def test_rejects_reasons_upgrade(db_env, tmp_path):
    """A database made when raw.rejects accepted five reasons gets the new ones on
    the next start, and keeps its rejects."""
    from sparkify.loader.schema import ensure_schema

    with connect(db_env) as conn:
        conn.autocommit = True
        ensure_schema(conn)
        conn.execute(
            "alter table raw.rejects drop constraint rejects_reason_check, "
            "add constraint rejects_reason_check check (reason in ('truncated', "
            "'invalid_utf8', 'not_json', 'not_an_object', 'jsonb_refused'))"
        )
        conn.execute(
            "insert into raw.rejects (source_file, line_number, line, reason, load_id) "
            "values ('log_data/old.json', 1, 'x', 'not_json', 0)"
        )
    feed = tmp_path / "feed"
    write_lines(feed / "log_data" / "new.json", [numbered(1), b"\r".join([numbered(2)] * 2)])
    result = run_loader(db_env, "--log-data", feed / "log_data")
    assert result.returncode == 0, result.stderr
    with connect(db_env) as conn:
        reasons = conn.execute("select reason from raw.rejects order by source_file").fetchall()
        (validated,) = conn.execute(
            "select convalidated from pg_constraint where conname = 'rejects_reason_check' "
            "and conrelid = 'raw.rejects'::regclass"
        ).fetchone()
    assert reasons == [("cr_line_breaks",), ("not_json",)]
    assert validated


# --- case 4: TEMP revoked from PUBLIC ------------------------------------------


def test_careful_path_needs_no_temp_privilege(roles, tmp_path):
    names, env = roles
    assert run_setup_roles(env).returncode == 0
    with connect(env) as conn:
        conn.autocommit = True
        conn.execute(
            sql.SQL("revoke temporary on database {} from public").format(
                sql.Identifier(env["PGDATABASE"])
            )
        )
    loader = as_role(env, names["loader"])
    with connect(loader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("create temporary table t (x int)")
    feed = tmp_path / "feed"
    cases = {
        # a \u0000 line (judged by PostgreSQL) beside a refused one (careful path)
        "log_data/nul.json": (
            [numbered(1), numbered(2, song="nul \u0000"), b'{"ts": NaN}', numbered(3)],
            [EV, "jsonb_refused", "not_json", EV],
        ),
        "log_data/suspect-only.json": (
            [numbered(4, song="nul \u0000"), numbered(5)],
            ["jsonb_refused", EV],
        ),
    }
    for relative, (lines, _) in cases.items():
        write_lines(feed / relative, lines)
    result = run_loader(loader, "--log-data", feed / "log_data")
    assert result.returncode == 0, result.stderr
    assert outcomes(env) == expected_outcomes(feed, {r: w for r, (_, w) in cases.items()})


# --- case 5: --verify ----------------------------------------------------------


def test_verify_catches_a_change_the_stat_skip_misses(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=2, per_day=3)
    day = feed / "log_data" / "2018" / "11" / "2018-11-01-events.json"
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    before = day.stat()
    changed = day.read_bytes().replace(b'"Kaylee"', b'"Kayleu"')
    assert len(changed) == before.st_size and changed != day.read_bytes()
    day.write_bytes(changed)
    os.utime(day, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p leaves it

    skipped = loader_json(run_loader(db_env, "--data-dir", feed, "--json"))
    assert skipped["files_loaded"] == 0  # the documented trade-off of the stat skip
    verified = loader_json(run_loader(db_env, "--data-dir", feed, "--verify", "--json"))
    assert verified["files_loaded"] == 1 and verified["files_replaced"] == 1
    with connect(db_env) as conn:
        names = {r[0] for r in conn.execute("select payload->>'firstName' from raw.events")}
    assert names == {"Kayleu", "Kaylee"}  # day 1 changed, day 2 not
    again = loader_json(run_loader(db_env, "--data-dir", feed, "--verify", "--json"))
    assert again["files_loaded"] == 0 and again["files_unchanged"] == 5
    assert len(outcomes(db_env)) == 2 * 3 + 3  # each line once


# --- case 6: files deleted from the feed; --prune ------------------------------


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
    assert loader_json(reported)["files_vanished"] == gone
    assert loader_json(reported)["files_pruned"] == 0
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
    assert loader_json(pruned)["files_pruned"] == 2 and loader_json(pruned)["loads"] == 2
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
            [loader_json(pruned)["first_load_id"], loader_json(pruned)["last_load_id"]],
        ).fetchall()
    assert left == 0
    assert prunes == [("events", 0, 0, 0, 1), ("songs", 0, 0, 0, 1)]
    assert_loads_match(db_env, superseded=landed_by)  # they hold less than they landed
    nothing = loader_json(run_loader(db_env, "--data-dir", feed, "--prune", "--json"))
    assert nothing["files_vanished"] == [] and nothing["loads"] == 0

    build(db_env, tmp_path)
    assert run_loader(other_db_env, "--data-dir", feed).returncode == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    build(other_db_env, fresh)
    assert outcomes(db_env) == outcomes(other_db_env)  # raw: the current feed, once
    assert mart_contents(db_env, load_times=False) == mart_contents(other_db_env, load_times=False)


# --- case 7: one bad path ------------------------------------------------------


def _deep_folder(root: Path, levels: int, n: int) -> None:
    """Folders 250 characters long, `levels` deep (well past PATH_MAX, 4096), with
    an event file at every level: made through directory descriptors, as no path
    that long can be opened."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for level in range(levels):
            name = f"{level:03d}" + "d" * 247
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
            file = os.open("e" * 200 + ".json", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
            os.write(file, numbered(n + level) + b"\n")
            os.close(file)
    finally:
        os.close(fd)


def test_a_path_that_cannot_be_listed_is_skipped_and_named(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=2, per_day=3)
    logs = feed / "log_data"
    _deep_folder(logs, 20, 100)
    result = run_loader(db_env, "--data-dir", feed, "--json")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    summary = loader_json(result)
    unreadable = summary["paths_unreadable"]
    assert len(unreadable) == 2  # a file whose path is too long, then its sibling folder
    assert all(name.startswith("log_data/000ddd") for name in unreadable)
    assert all(f"skipped {name}: cannot be listed" in result.stderr for name in unreadable)
    assert "exit code 3" in one_line_said(result.stderr)
    landed = outcomes(db_env)
    deep_files = [name for name, _ in landed if name.startswith("log_data/000")]
    assert len(deep_files) == 15  # the levels whose files' paths fit
    assert sum(where == EV for where in landed.values()) == 2 * 3 + 15
    assert_loads_match(db_env)
    # What could not be listed is unknown, not gone: --prune leaves it alone.
    again = run_loader(db_env, "--data-dir", feed, "--prune", "--json")
    assert again.returncode == 3
    assert loader_json(again)["files_vanished"] == []


# --- case 9: CR-only line endings ----------------------------------------------


def test_cr_only_line_endings_are_a_reject_that_says_so(db_env, tmp_path):
    feed = tmp_path / "feed"
    cr_file = feed / "log_data" / "old-mac.json"
    cr_file.parent.mkdir(parents=True)
    cr_file.write_bytes(b"\r".join(numbered(n) for n in range(1, 4)) + b"\r")
    write_lines(
        feed / "log_data" / "cr-in-the-middle.json",
        [numbered(4), b"\r".join([numbered(5), numbered(6)]), numbered(7)],
    )
    result = run_loader(db_env, "--log-data", feed / "log_data")
    assert result.returncode == 0, result.stderr
    assert outcomes(db_env) == {
        ("log_data/old-mac.json", 1): "cr_line_breaks",
        ("log_data/cr-in-the-middle.json", 1): EV,
        ("log_data/cr-in-the-middle.json", 2): "cr_line_breaks",
        ("log_data/cr-in-the-middle.json", 3): EV,
    }
    with connect(db_env) as conn:
        (detail,) = conn.execute(
            "select detail from raw.rejects where source_file = 'log_data/old-mac.json'"
        ).fetchone()
    assert "lone CR" in detail and "3 JSON lines" in detail


# --- case 10: signals ----------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "workers"), [("coordinator", "1"), ("coordinator", "2"), ("group", "2")]
)
def test_sigterm_says_one_line_and_exits_143(db_env, tmp_path, target, workers):
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    loader = start_loader(db_env, tmp_path / "err", "--data-dir", feed, "--workers", workers)
    try:
        wait_until(blocker.blocked_pids, "the loader to block on the held row")
        if target == "group":
            os.killpg(loader.pid, signal.SIGTERM)  # as systemd or docker stop do
        else:
            os.kill(loader.pid, signal.SIGTERM)
        loader.wait(timeout=WAIT_SECONDS)
    finally:
        blocker.release()
        if loader.poll() is None:
            kill_group(loader)
    stderr = (tmp_path / "err").read_text()
    assert loader.returncode == 143, stderr
    last = one_line_said(stderr)
    assert "terminated (SIGTERM)" in last and "re-run" in last
    assert sum("terminated" in line for line in stderr.splitlines()) == 1
    assert_nothing_half_loaded(db_env)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    assert len(outcomes(db_env)) == 3 * 20 + 3


def test_ctrl_c_while_importing_says_one_line(db_env, tmp_path):
    """-X importtime reports each module as its import ends: a SIGINT sent when
    psycopg's first submodules are in lands while psycopg still imports."""
    feed = make_feed(tmp_path / "feed", days=1, per_day=3)
    loader = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "sparkify.loader",
            "--data-dir",
            feed,
        ],
        env=db_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    said = []
    assert loader.stderr is not None
    for line in loader.stderr:
        said.append(line)
        if "psycopg.pq" in line:
            os.killpg(loader.pid, signal.SIGINT)  # Ctrl-C reaches the whole group
            break
    rest = loader.stderr.read()
    loader.wait(timeout=60)
    words = [line for line in [*said, *rest.splitlines()] if not line.startswith("import time")]
    assert loader.returncode == 130, words
    assert len(words) == 1 and "Traceback" not in rest, words
    assert words[0].startswith("load_raw: interrupted")


# --- case 11: duplicate keys in one object --------------------------------------


def test_duplicate_keys_keep_the_last_value_as_documented(db_env, tmp_path):
    """The documented exception: jsonb keeps the last value of a repeated key (the
    loader does not parse lines it can hand to COPY); the line lands, once."""
    feed = tmp_path / "feed"
    duplicated = numbered(1)[:-1] + b',"page":"Home"}'
    assert duplicated.count(b'"page"') == 2
    write_lines(feed / "log_data" / "dup.json", [duplicated, numbered(2)])
    assert run_loader(db_env, "--log-data", feed / "log_data").returncode == 0
    assert outcomes(db_env) == {("log_data/dup.json", 1): EV, ("log_data/dup.json", 2): EV}
    with connect(db_env) as conn:
        pages = conn.execute(
            "select payload->>'page' from raw.events order by line_number"
        ).fetchall()
    assert pages == [("Home",), ("NextSong",)]
    documented = (REPO_ROOT / "docs" / "operations.md").read_text()
    assert "repeated key" in documented


def test_near_miss_pages_are_not_plays_but_are_counted(db_env, tmp_path):
    """Case 8: `nextsong`, `NEXTSONG`, `Next Song` are not plays (the feed's value is
    exactly NextSong); every such line is counted per file, by day in the
    reconciliation, and reported by a warn test, and so are unknown auth and method
    values."""
    feed = make_feed(tmp_path / "feed", days=1, per_day=4)
    day = feed / "log_data" / "2018" / "11" / "2018-11-02-events.json"
    near_misses = ["nextsong", "NEXTSONG", "Next Song"]
    odd = [numbered(100 + i, page=page) for i, page in enumerate(near_misses)]
    odd.append(numbered(200, page="Home", auth="Sneaking In", method="PATCH"))
    write_lines(day, odd)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    built = build(db_env, tmp_path)
    for test, count in (
        ("stg_sparkify__events_play_like_pages_not_counted_as_plays", 3),
        ("stg_sparkify__events_unknown_auth", 1),
        ("stg_sparkify__events_unknown_method", 1),
    ):
        assert f"WARN {count} {test}" in built.stdout, test
    with connect(db_env) as conn:
        plays = conn.execute("select count(*) from analytics.songplays").fetchone()[0]
        counted = conn.execute(
            "select play_like_page_count from audit.event_line_quality where source_file = %s",
            [day.relative_to(feed).as_posix()],
        ).fetchone()[0]
        by_day = conn.execute(
            "select sum(play_like_events), bool_and(is_reconciled) "
            "from audit.songplay_reconciliation"
        ).fetchone()
    assert plays == 4  # the first day's NextSong lines only
    assert counted == 3
    assert by_day == (3, True)
