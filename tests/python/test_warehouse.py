"""The whole warehouse: load_raw.py, then dbt build, checked against an independent oracle.

The oracle reads the JSON files with plain Python and applies the rules the docs
state; it shares no code with the loader or the models.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import UDACITY_SAMPLE, connect, generate_feed, run_dbt, run_loader

MART_KEYS = {
    "songplays": "songplay_id",
    "users": "user_id",
    "songs": "song_id",
    "artists": "artist_id",
    "time": "start_time",
}

needs_udacity = pytest.mark.skipif(
    not UDACITY_SAMPLE.exists(), reason=f"the public sample is not at {UDACITY_SAMPLE}"
)


def read_feed(root: Path) -> tuple[list[dict], list[dict]]:
    events = [
        json.loads(line)
        for path in sorted((root / "log_data").rglob("*.json"))
        for line in path.read_bytes().split(b"\n")
        if line.strip()
    ]
    songs = [json.loads(path.read_bytes()) for path in sorted((root / "song_data").rglob("*.json"))]
    return events, songs


def oracle(events: list[dict], songs: list[dict]) -> dict:
    """What the marts must hold, by the documented rules, computed in plain Python."""
    plays = {}
    for event in events:
        if event["page"] == "NextSong" and isinstance(event["ts"], int):
            key = (event["userId"], event["sessionId"], event["itemInSession"], event["ts"])
            plays.setdefault(key, event)
    catalogue: dict[tuple, str] = {}
    for song in sorted(songs, key=lambda s: s["song_id"]):
        catalogue.setdefault(
            (song["title"], song["artist_name"], song["duration"]), song["song_id"]
        )
    matched = {
        key: catalogue[(e["song"], e["artist"], e["length"])]
        for key, e in plays.items()
        if (e["song"], e["artist"], e["length"]) in catalogue
    }
    return {
        "songplays": len(plays),
        "users": len({e["userId"] for e in events if e["userId"]}),
        "songs": len({s["song_id"] for s in songs}),
        "artists": len({s["artist_id"] for s in songs}),
        "time": len({e["ts"] for e in plays.values()}),
        "matched": matched,
        "plays": plays,
    }


def mart_counts(env: dict[str, str]) -> dict[str, int]:
    with connect(env) as conn:
        return {
            mart: conn.execute(f"select count(*) from analytics.{mart}").fetchone()[0]
            for mart in MART_KEYS
        }


def mart_contents(env: dict[str, str]) -> dict[str, list[tuple]]:
    """Every row of every mart, in key order, for equality checks."""
    with connect(env) as conn:
        contents = {}
        for mart, key in MART_KEYS.items():
            columns = [
                row[0]
                for row in conn.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'analytics' and table_name = %s "
                    "and column_name not like '\\_%%' order by ordinal_position",
                    [mart],
                )
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            contents[mart] = conn.execute(
                f'select {select} from analytics."{mart}" order by "{key}"'
            ).fetchall()
        return contents


def build(env: dict[str, str], tmp_path: Path, *extra: str) -> None:
    result = run_dbt(env, tmp_path, "build", *extra)
    assert result.returncode == 0, result.stdout[-4000:]


@needs_udacity
def test_udacity_sample_marts_agree_with_an_independent_count(db_env, tmp_path):
    events, songs = read_feed(UDACITY_SAMPLE)
    expected = oracle(events, songs)
    assert run_loader(db_env, "--data-dir", UDACITY_SAMPLE).returncode == 0
    build(db_env, tmp_path)

    counts = mart_counts(db_env)
    assert counts == {mart: expected[mart] for mart in MART_KEYS}
    with connect(db_env) as conn:
        matched = conn.execute(
            "select user_id, session_id, start_time, song_id from analytics.songplays "
            "where song_id is not null"
        ).fetchall()
        sample = conn.execute(
            "select start_time, user_id, level, location from analytics.songplays "
            "order by start_time, user_id limit 1"
        ).fetchone()
    assert len(matched) == len(expected["matched"])
    assert sorted(song for *_, song in matched) == sorted(expected["matched"].values())
    first = min(expected["plays"].values(), key=lambda e: (e["ts"], e["userId"]))
    start = datetime(1970, 1, 1) + timedelta(milliseconds=first["ts"])
    assert sample == (start, first["userId"], first["level"], first["location"])


def test_loading_twice_or_under_another_name_changes_no_mart(db_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "6", "--users", "20", "--songs", "60", "--events-per-day", "120")
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    build(db_env, tmp_path)
    first = mart_contents(db_env)
    assert all(first[mart] for mart in MART_KEYS)

    # The same data again: nothing new is loaded, and an incremental build changes nothing.
    again = run_loader(db_env, "--data-dir", feed)
    assert "loaded 0 files" in again.stdout
    build(db_env, tmp_path)
    assert mart_contents(db_env) == first

    # A day file delivered a second time under another name lands in raw, and counts once.
    day = sorted((feed / "log_data").rglob("*-events.json"))[2]
    shutil.copy(day, day.with_name(day.stem + " (1).json"))
    redelivered = run_loader(db_env, "--data-dir", feed)
    assert "loaded 1 files" in redelivered.stdout
    build(db_env, tmp_path)
    assert mart_contents(db_env) == first

    # And a full refresh agrees with the incremental result.
    build(db_env, tmp_path, "--full-refresh")
    assert mart_contents(db_env) == first


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
    assert "WARN" in built.stdout
