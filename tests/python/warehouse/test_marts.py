"""Marts that stay right as data grows: matching against the generator's truth,
incremental builds equal to full refreshes, user level history, reconciliation.

Each test checks the warehouse against something independent of the models: the
generator's record of what it wrote, or the raw JSON read with plain Python.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

import pytest

from feed_lines import make_feed
from helpers import (
    MARTS,
    build,
    connect,
    dbt_results,
    deliver,
    generate_feed,
    load_json,
    run_loader,
    warehouse_fingerprint,
    write_lines,
)
from landing import numbered

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

NEAR_MISSES = ("case", "whitespace", "duration_rounding", "mojibake")


def read_truth(feed: Path) -> dict[tuple[str, int], dict]:
    with (feed / "_truth" / "songplays.csv").open(newline="") as handle:
        rows = csv.DictReader(handle)
        return {(row["source_file"], int(row["line_number"])): row for row in rows}


def test_improved_matching_recovers_near_misses_and_never_matches_falsely(small_month):
    truth = read_truth(small_month.feed)
    with connect(small_month.env) as conn:
        built = conn.execute(
            "select events.source_file, events.line_number, plays.song_id, "
            "plays.song_match_rule "
            "from analytics.songplays as plays "
            "join staging.stg_sparkify__events as events on events.event_id = plays.songplay_id"
        ).fetchall()
    assert len(built) == len(truth)

    by_variant: dict[str, Counter] = defaultdict(Counter)
    for source_file, line_number, song_id, rule in built:
        play = truth[(source_file, line_number)]
        if song_id is not None:
            # No false match: a matched play always gets the song it really is.
            assert song_id == play["song_id"], (play, song_id)
        by_variant[play["variant"]][rule] += 1

    for variant in NEAR_MISSES:
        assert by_variant[variant][None] == 0, f"{variant} plays left unmatched"
    assert set(by_variant["not_in_catalogue"]) == {None}
    # The exact rule alone recovers the exact plays and the padded ones (staging trims).
    assert by_variant["case"]["exact"] == by_variant["mojibake"]["exact"] == 0
    assert by_variant["exact"]["normalized"] == 0
    assert sum(by_variant[v]["exact"] for v in by_variant) == (
        by_variant["exact"]["exact"] + by_variant["whitespace"]["exact"]
    )
    catalogue_plays = sum(sum(by_variant[v].values()) for v in ("exact", *NEAR_MISSES))
    exact = sum(counts["exact"] for counts in by_variant.values())
    improved = exact + sum(counts["normalized"] for counts in by_variant.values())
    assert improved == catalogue_plays > exact
    print(
        f"generated: {len(truth)} plays, {catalogue_plays} of catalogue songs; "
        f"exact rule {exact} ({exact / len(truth):.1%}), "
        f"improved rule {improved} ({improved / len(truth):.1%})"
    )


def test_second_half_of_a_month_built_incrementally_equals_a_full_refresh(db_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "12", "--users", "30", "--songs", "80", "--events-per-day", "150")
    days = sorted((feed / "log_data").rglob("*-events.json"))
    delivery = tmp_path / "delivery"

    deliver(feed, delivery, days[:6])
    assert run_loader(db_env, "--data-dir", delivery).returncode == 0
    build(db_env, tmp_path)
    first_half = warehouse_fingerprint(db_env, MARTS)
    first_plays = songplay_rows(db_env)

    deliver(feed, delivery, days[6:])
    assert run_loader(db_env, "--data-dir", delivery).returncode == 0
    incremental = build(db_env, tmp_path)
    assert "rewrite model" in incremental.stdout  # materialized=rewrite (the contract)
    both_halves = warehouse_fingerprint(db_env, MARTS)
    assert both_halves["analytics.songplays"][0] > first_half["analytics.songplays"][0] > 0
    assert_top_reports_count_from_songplays(db_env)
    # The first half's plays are untouched by the second build.
    assert first_plays <= songplay_rows(db_env)

    # A corrected day file: one play moves to another song, the last line goes.
    corrected = delivery / days[3].relative_to(feed)
    lines = corrected.read_bytes().split(b"\n")
    plays = [i for i, line in enumerate(lines) if b'"NextSong"' in line]
    event = json.loads(lines[plays[0]])
    other = json.loads(lines[plays[-1]])
    event.update(song=other["song"], artist=other["artist"], length=other["length"])
    lines[plays[0]] = json.dumps(event).encode()
    corrected.write_bytes(b"\n".join(lines[:-1]))
    _, reloaded, _ = load_json(db_env, "--data-dir", delivery)
    assert (reloaded["files_loaded"], reloaded["files_replaced"]) == (1, 1), reloaded
    build(db_env, tmp_path)
    after_correction = warehouse_fingerprint(db_env, MARTS)
    assert after_correction != both_halves
    assert_top_reports_count_from_songplays(db_env)

    # And running again changes nothing; a full refresh builds the very same rows.
    assert load_json(db_env, "--data-dir", delivery)[1]["files_loaded"] == 0
    build(db_env, tmp_path)
    assert warehouse_fingerprint(db_env, MARTS) == after_correction
    build(db_env, tmp_path, "--full-refresh")
    assert warehouse_fingerprint(db_env, MARTS) == after_correction


def songplay_rows(env: dict[str, str]) -> set[tuple]:
    with connect(env) as conn:
        return set(conn.execute("select * from analytics.songplays").fetchall())


def assert_top_reports_count_from_songplays(env: dict[str, str]) -> None:
    """rpt_top_songs and rpt_top_artists, built from daily rollups of first plays,
    agree with plain counts over every play."""
    checks = {
        "rpt_top_songs": (
            "song_id",
            "count(*), count(distinct user_id)",
            "play_count, listener_count",
        ),
        "rpt_top_artists": (
            "artist_id",
            "count(*), count(distinct user_id), count(distinct song_id)",
            "play_count, listener_count, song_count",
        ),
    }
    with connect(env) as conn:
        for report, (key, counts, columns) in checks.items():
            counted = conn.execute(
                f"select {key}, {counts} from analytics.songplays "
                f"where {key} is not null group by {key} order by {key}"
            ).fetchall()
            reported = conn.execute(
                f"select {key}, {columns} from reports.{report} order by {key}"
            ).fetchall()
            assert reported == counted, report
            assert counted, report


def level_timelines(feed: Path) -> dict[str, list[str]]:
    """Each user's levels in event order, read from the JSON with plain Python."""
    events = [
        json.loads(line)
        for path in (feed / "log_data").rglob("*.json")
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    ]
    timelines: dict[str, list[tuple]] = defaultdict(list)
    for event in events:
        if event["userId"] and event["level"]:
            order = (event["ts"], event["sessionId"], event["itemInSession"])
            timelines[str(event["userId"])].append((order, event["level"]))
    return {user: [level for _, level in sorted(rows)] for user, rows in timelines.items()}


def test_users_history_has_a_period_per_level_change_and_agrees_with_users(small_month):
    expected = {
        user: [level for i, level in enumerate(levels) if i == 0 or levels[i - 1] != level]
        for user, levels in level_timelines(small_month.feed).items()
    }
    assert any(len(periods) > 1 for periods in expected.values()), "no level changes generated"
    with connect(small_month.env) as conn:
        rows = conn.execute(
            "select user_id, level, valid_from, valid_to, is_current "
            "from analytics.users_history order by user_id, valid_from, valid_to nulls last"
        ).fetchall()
        users = dict(conn.execute("select user_id, level from analytics.users"))

    history: dict[str, list[tuple]] = defaultdict(list)
    for user_id, *period in rows:
        history[user_id].append(tuple(period))
    assert {user: [p[0] for p in periods] for user, periods in history.items()} == expected
    for user, periods in history.items():
        # Periods follow each other without gap or overlap; only the last is current.
        for (_, _, valid_to, _), (_, valid_from, _, _) in pairwise(periods):
            assert valid_to == valid_from
        assert [p[3] for p in periods] == [False] * (len(periods) - 1) + [True]
        assert periods[-1][2] is None
        assert users[user] == periods[-1][0]


def valid_ts(value) -> int | None:
    """The rule staging documents: a whole number of epoch ms, as number or text."""
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    try:
        datetime.fromtimestamp(int(number) / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return int(number)


def test_every_valid_song_play_in_raw_is_in_songplays_once_day_by_day(db_env, tmp_path):
    feed = tmp_path / "faulty"
    generate_feed(
        feed, "--days", "8", "--users", "20", "--songs", "40", "--events-per-day", "120", "--faults"
    )
    day = sorted((feed / "log_data").rglob("*-events.json"))[1]
    shutil.copy(day, day.with_name("redelivered copy.json"))
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    build(db_env, tmp_path)

    with connect(db_env) as conn:
        payloads = [row[0] for row in conn.execute("select payload from raw.events")]
        built_days = dict(
            conn.execute(
                "select cast(start_time as date), count(*) from analytics.songplays group by 1"
            )
        )
        reconciliation = conn.execute(
            "select event_date, song_play_lines, redelivered_lines, invalid_ts_events, "
            "songplays, is_reconciled from audit.songplay_reconciliation"
        ).fetchall()

    # The oracle: NextSong lines in raw, keyed as the docs say, counted per day.
    lines = [p for p in payloads if p.get("page") == "NextSong"]
    valid: dict[tuple, int] = {}
    invalid = set()
    for payload in lines:
        key = tuple(
            str(payload.get(field)) for field in ("userId", "sessionId", "itemInSession", "ts")
        )
        ts = valid_ts(payload.get("ts"))
        if ts is None:
            invalid.add(key)
        else:
            valid[key] = ts
    expected_days = Counter(datetime.fromtimestamp(ts / 1000, UTC).date() for ts in valid.values())
    assert built_days == dict(expected_days)
    assert sum(built_days.values()) == len(valid)

    # The audit model accounts for every NextSong line: played, redelivered or invalid.
    assert all(row[-1] for row in reconciliation), reconciliation
    assert sum(row[1] for row in reconciliation) == len(lines)
    assert sum(row[2] for row in reconciliation) == len(lines) - len(valid) - len(invalid) > 0
    assert sum(row[3] for row in reconciliation) == len(invalid) > 0
    assert {row[0]: row[4] for row in reconciliation if row[0]} == dict(expected_days)


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
    build(db_env, tmp_path)
    results = dbt_results(tmp_path)
    for test, count in (
        ("stg_sparkify__events_play_like_pages_not_counted_as_plays", 3),
        ("stg_sparkify__events_unknown_auth", 1),
        ("stg_sparkify__events_unknown_method", 1),
    ):
        assert (results[test]["status"], results[test]["failures"]) == ("warn", count), test
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
