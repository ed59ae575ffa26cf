"""The raw loader against a real PostgreSQL: nothing lost, nothing doubled, clear errors."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from feed_lines import FailingSource, event_line, make_feed, summary_of
from helpers import UDACITY_SAMPLE, connect, run_loader, scalar, write_lines
from sparkify.loader.batch import load_batch
from sparkify.loader.planning import PlannedFile
from sparkify.loader.schema import ensure_schema


def counts(env: dict[str, str]) -> dict[str, int]:
    with connect(env) as conn:
        return {
            table: scalar(conn, f"select count(*) from raw.{table}")
            for table in ("events", "songs", "rejects", "load_manifest")
        }


def test_loads_every_line_and_file(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=5)
    result = run_loader(db_env, "--data-dir", feed)
    assert result.returncode == 0, result.stderr
    assert counts(db_env) == {"events": 15, "songs": 3, "rejects": 0, "load_manifest": 6}
    # The prose summary is the default (--json: see the other tests).
    assert "15 event rows, 3 song rows, 0 rejects" in result.stdout
    with connect(db_env) as conn:
        row = conn.execute(
            "select source_file, line_number, payload from raw.events order by 1, 2 limit 1"
        ).fetchone()
    assert row[0] == "log_data/2018/11/2018-11-01-events.json"
    assert row[1] == 1
    assert row[2] == json.loads(event_line(ts=1541000000000 + 86_400_000, itemInSession=0))


def test_rerun_loads_nothing_new(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    with connect(db_env) as conn:
        before = conn.execute(
            "select source_file, checksum, loaded_at from raw.load_manifest order by 1"
        ).fetchall()
    again = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (again["files_loaded"], again["files_unchanged"], again["loads"]) == (0, 6, 0)
    with connect(db_env) as conn:
        after = conn.execute(
            "select source_file, checksum, loaded_at from raw.load_manifest order by 1"
        ).fetchall()
    assert before == after
    assert counts(db_env)["events"] == 15


def test_changed_file_replaces_its_rows(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    day = feed / "log_data" / "2018" / "11" / "2018-11-02-events.json"
    write_lines(day, [event_line(ts=1, itemInSession=i, song="changed") for i in range(2)])
    result = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (result["files_loaded"], result["files_replaced"], result["event_rows"]) == (1, 1, 2)
    with connect(db_env) as conn:
        songs = conn.execute(
            "select payload->>'song' from raw.events where source_file like %s",
            ["%2018-11-02-events.json"],
        ).fetchall()
        manifest_rows = conn.execute(
            "select row_count from raw.load_manifest where source_file like %s", ["%2018-11-02%"]
        ).fetchone()[0]
    assert songs == [("changed",), ("changed",)]
    assert manifest_rows == 2
    assert counts(db_env)["events"] == 12


def test_hostile_lines_are_rejected_with_a_reason(db_env, tmp_path):
    feed = tmp_path / "feed"
    lines = [
        event_line(itemInSession=0),  # 1 ok
        b"",  # 2 blank: not input
        b"not json at all",  # 3
        b"[1, 2, 3]",  # 4
        b'{"userId": "1", "bad": "\xff\xfe"}',  # 5 invalid UTF-8
        b'{"userId": "1", "song": "nul \\u0000 inside"}',  # 6 jsonb refuses \u0000
        b"   \t ",  # 7 whitespace only: not input
        event_line(itemInSession=8),  # 8 ok
        b'{"userId": "1", "ts": NaN}',  # 9 NaN is not JSON
        b'{"artist":null,"auth":"Logged In","firstName":"Kay',  # 10 truncated last line
    ]
    write_lines(feed / "log_data" / "2018-11-01-events.json", lines)
    result = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    with connect(db_env) as conn:
        landed = [r[0] for r in conn.execute("select line_number from raw.events order by 1")]
        rejects = conn.execute(
            "select line_number, reason, line from raw.rejects order by 1"
        ).fetchall()
        manifest = conn.execute("select row_count, reject_count from raw.load_manifest").fetchone()
    assert landed == [1, 8]
    assert [(n, reason) for n, reason, _ in rejects] == [
        (3, "not_json"),
        (4, "not_an_object"),
        (5, "invalid_utf8"),
        (6, "jsonb_refused"),
        (9, "not_json"),
        (10, "truncated"),
    ]
    # The raw bytes are kept exactly, even when they are not UTF-8.
    assert bytes(rejects[2][2]) == lines[4]
    assert manifest == (2, 6)
    assert (result["event_rows"], result["rejects"]) == (2, 6)


def test_bom_crlf_and_gzip_are_read_transparently(db_env, tmp_path):
    feed = tmp_path / "feed"
    crlf = b"\xef\xbb\xbf" + b"\r\n".join(event_line(itemInSession=i) for i in range(3)) + b"\r\n"
    (feed / "log_data").mkdir(parents=True)
    (feed / "log_data" / "2018-11-01-events.json").write_bytes(crlf)
    (feed / "log_data" / "2018-11-02-events.json.gz").write_bytes(
        gzip.compress(b"\n".join(event_line(itemInSession=i, ts=2) for i in range(4)))
    )
    result = run_loader(db_env, "--data-dir", feed)
    assert result.returncode == 0, result.stderr
    assert counts(db_env)["events"] == 7
    assert counts(db_env)["rejects"] == 0


def test_non_data_files_are_skipped_and_reported(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=1, per_day=2)
    (feed / "log_data" / "README.txt").write_text("not data")
    (feed / "log_data" / ".DS_Store").write_bytes(b"\x00\x01")
    result = run_loader(db_env, "--data-dir", feed, "--json")
    assert summary_of(result)["files_skipped"] == 2
    assert "log_data/README.txt" in result.stderr
    assert counts(db_env)["load_manifest"] == 4


def test_unreachable_database_is_one_line_and_exit_1(tmp_path, server_env):
    feed = make_feed(tmp_path / "feed", days=1, per_day=1)
    env = {**server_env, "PGHOST": str(tmp_path / "no-server-here"), "PGDATABASE": "x"}
    result = run_loader(env, "--data-dir", feed)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach PostgreSQL" in result.stderr


def test_missing_folder_is_a_usage_error(server_env, tmp_path):
    result = run_loader(server_env, "--data-dir", tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == f"load_raw: no such folder: {tmp_path / 'nowhere'}"


def test_help_explains_exit_codes(server_env):
    result = run_loader(server_env, "--help")
    assert result.returncode == 0
    assert "exit codes" in result.stdout and "raw.rejects" in result.stdout


def test_failure_mid_batch_leaves_nothing_half_loaded(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=4)
    source = FailingSource({"events": feed / "log_data"})
    files, _ = source.list_files()
    planned = [PlannedFile(f, None, replaces=False) for f in files]  # new: hashed as read
    with connect(db_env) as conn:
        conn.autocommit = True
        ensure_schema(conn)
        with pytest.raises(OSError):
            load_batch(conn, source, planned)
    assert counts(db_env) == {"events": 0, "songs": 0, "rejects": 0, "load_manifest": 0}
    # And the real loader then loads everything, once.
    assert run_loader(db_env, "--log-data", feed / "log_data").returncode == 0
    assert counts(db_env)["events"] == 12


@pytest.mark.skipif(
    not UDACITY_SAMPLE.exists(), reason=f"the public sample is not at {UDACITY_SAMPLE}"
)
def test_udacity_sample_every_line_lands(db_env, tmp_path):
    feed = tmp_path / "udacity"
    shutil.copytree(UDACITY_SAMPLE, feed)
    expected_events = sum(
        1
        for path in (feed / "log_data").rglob("*.json")
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    )
    expected_songs = len(list((feed / "song_data").rglob("*.json")))
    result = run_loader(db_env, "--data-dir", feed)
    assert result.returncode == 0, result.stderr
    got = counts(db_env)
    assert (got["events"], got["songs"], got["rejects"]) == (expected_events, expected_songs, 0)
    assert expected_events == 8056
