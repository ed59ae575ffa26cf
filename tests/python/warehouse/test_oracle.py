"""The whole warehouse: load_raw.py, then dbt build, checked against an independent oracle.

The oracle (course_oracle.py) reads the JSON files with plain Python and applies
the rules the docs state; it shares no code with the loader or the models.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta

import pytest

from course_oracle import ORACLE_MARTS, needs_udacity, oracle, read_feed
from helpers import (
    MARTS,
    UDACITY_SAMPLE,
    build,
    connect,
    dbt_results,
    generate_feed,
    load_json,
    run_dbt,
    run_loader,
    warehouse_fingerprint,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt


@needs_udacity
def test_udacity_sample_marts_agree_with_an_independent_count(db_env, tmp_path):
    events, songs = read_feed(UDACITY_SAMPLE)
    expected = oracle(events, songs)
    assert run_loader(db_env, "--data-dir", UDACITY_SAMPLE).returncode == 0
    build(db_env, tmp_path)

    counts = {
        name.removeprefix("analytics."): rows
        for name, (rows, _) in warehouse_fingerprint(db_env, MARTS).items()
    }
    assert {mart: counts[mart] for mart in ORACLE_MARTS} == {
        mart: expected[mart] for mart in ORACLE_MARTS
    }
    with connect(db_env) as conn:
        matched = conn.execute(
            "select song_id, song_match_rule from analytics.songplays where song_id is not null"
        ).fetchall()
        sample = conn.execute(
            "select start_time, user_id, level, location from analytics.songplays "
            "order by start_time, user_id limit 1"
        ).fetchone()
    assert sorted(matched) == sorted(expected["matched"].values())
    rules = [rule for _, rule in expected["matched"].values()]
    print(
        f"public sample: {len(expected['plays'])} plays, exact rule {rules.count('exact')}, "
        f"improved rule {len(rules)}"
    )
    first = min(expected["plays"].values(), key=lambda e: (e["ts"], e["userId"]))
    start = datetime(1970, 1, 1) + timedelta(milliseconds=first["ts"])
    assert sample == (start, first["userId"], first["level"], first["location"])


def test_loading_twice_or_under_another_name_changes_no_mart(db_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "6", "--users", "20", "--songs", "60", "--events-per-day", "120")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    build(db_env, tmp_path)
    first = warehouse_fingerprint(db_env, MARTS)
    first_without_load_times = warehouse_fingerprint(db_env, MARTS, load_times=False)
    assert all(rows for rows, _ in first.values())

    # The same data again: nothing new is loaded, and an incremental build changes nothing.
    assert load_json(db_env, "--data-dir", feed)[1]["files_loaded"] == 0
    build(db_env, tmp_path)
    assert warehouse_fingerprint(db_env, MARTS) == first

    # A day file delivered a second time under another name lands in raw, and counts
    # once: only the load times of the events it carries move.
    day = sorted((feed / "log_data").rglob("*-events.json"))[2]
    shutil.copy(day, day.with_name(day.stem + " (1).json"))
    assert load_json(db_env, "--data-dir", feed)[1]["files_loaded"] == 1
    build(db_env, tmp_path)
    incremental = warehouse_fingerprint(db_env, MARTS)
    assert warehouse_fingerprint(db_env, MARTS, load_times=False) == first_without_load_times

    # And a full refresh agrees with the incremental result, load times included.
    build(db_env, tmp_path, "--full-refresh")
    assert warehouse_fingerprint(db_env, MARTS) == incremental


REJECT_REASONS = {"truncated", "invalid_utf8", "not_json", "not_an_object", "jsonb_refused"}


def test_faulty_feed_every_line_accounted_for_and_build_succeeds(db_env, tmp_path):
    """The generator's --faults damage: each injected fault ends where the docs say."""
    feed = tmp_path / "faulty"
    generate_feed(
        feed, "--days", "8", "--users", "20", "--songs", "40", "--events-per-day", "80", "--faults"
    )
    faults = json.loads((feed / "_faults.json").read_text())
    result = run_loader(db_env, "--data-dir", feed)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    with connect(db_env) as conn:
        rejects = {
            (name, number): reason
            for name, number, reason in conn.execute(
                "select source_file, line_number, reason from raw.rejects"
            )
        }
        landed = {
            (name, number)
            for name, number in conn.execute(
                "select source_file, line_number from raw.events "
                "union all select source_file, line_number from raw.songs"
            )
        }
    for fault in faults:
        where = (fault["file"], fault["line_number"])
        if fault["expect"] in REJECT_REASONS:
            assert rejects.get(where) == fault["expect"], fault
        elif fault["expect"] == "load" and fault["line_number"] is not None:
            assert where in landed, fault
        elif fault["expect"] == "skip_file":
            assert fault["file"] in result.stderr, fault
        elif fault["expect"] == "ignore":
            assert where not in landed and where not in rejects, fault
    # Every non-blank input line is a landed row or a reject: nothing else, nothing lost.
    expected_lines = sum(
        sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        for path in (feed / "log_data").rglob("*.json")
    ) + len(list((feed / "song_data").rglob("*.json")))
    assert len(landed) + len(rejects) == expected_lines
    # Only the faults the generator injected were rejected.
    assert len(rejects) == sum(fault["expect"] in REJECT_REASONS for fault in faults)

    # Bad values in the data never break the build; warn tests surface them.
    built = run_dbt(db_env, tmp_path, "build")
    assert built.returncode == 0, built.stdout[-4000:]
    assert "warn" in {result["status"] for result in dbt_results(tmp_path).values()}


def test_a_column_built_with_an_older_type_stops_the_build_until_a_full_refresh(db_env, tmp_path):
    """docs/operations.md, "Upgrading": what a warehouse built by an older version sees."""
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2", "--users", "10", "--songs", "20", "--events-per-day", "60")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    build(db_env, tmp_path)
    # As an older version built it: session_minutes without the contract's scale.
    with connect(db_env) as conn:
        conn.execute("alter table reports.rpt_sessions alter column session_minutes type numeric")
        conn.commit()

    stopped = run_dbt(db_env, tmp_path, "build", "--select", "rpt_sessions")
    assert stopped.returncode != 0
    assert "out of sync" in dbt_results(tmp_path)["rpt_sessions"]["message"]

    build(db_env, tmp_path, "--full-refresh", "--select", "rpt_sessions")
    with connect(db_env) as conn:
        column_type = conn.execute(
            "select format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = 'reports.rpt_sessions'::regclass and attname = 'session_minutes'"
        ).fetchone()
    assert column_type == ("numeric(10,2)",)
    build(db_env, tmp_path, "--select", "rpt_sessions")
