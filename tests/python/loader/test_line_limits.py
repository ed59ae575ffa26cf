"""Lines the loader must refuse, with a reason, while the rest of the file lands:
too deep, too long (also after gzip), CR-only line endings, and a repeated key
(kept, as documented). After each, every non-blank input line is in
raw.events/raw.songs or raw.rejects exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from feed_lines import SONG, summary_of
from helpers import (
    REPO_ROOT,
    assert_loads_match,
    build,
    connect,
    run_loader,
    write_lines,
)
from landing import (
    DEEP,
    DEEPER,
    EV,
    LIMIT,
    SONG_ROW,
    deep_array,
    deep_object,
    expected_outcomes,
    numbered,
    outcomes,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt


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
    summary = summary_of(result)
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
