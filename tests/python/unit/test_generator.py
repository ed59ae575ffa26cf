"""The sample data generator: feed shape, behaviour, truth file, faults and CLI.

Feeds are small (a few thousand events) and generated once per module. Schema tests
compare against the real public sample where ../shared exists, and skip otherwise.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from sparkify.checkout import REPO_ROOT
from sparkify.generator import GeneratorConfig, generate
from sparkify.generator.catalogue import mojibake, repair_mojibake
from sparkify.generator.faults import EXPECT, LOSES_EVENT

SAMPLE = REPO_ROOT.parent / "shared/data/udacity-sample"
GENERATOR = [sys.executable, "-m", "sparkify.generator"]

SMALL: dict[str, Any] = {"days": 6, "users": 25, "songs": 120, "events_per_day": 400.0, "seed": 7}
LOG_NAME = re.compile(r"^log_data/(\d{4})/(\d{2})/(\d{4})-(\d{2})-(\d{2})-events\.json$")
SONG_NAME = re.compile(r"^song_data/([A-Z])/([A-Z])/([A-Z])/(TR[A-Z0-9]{16})\.json$")
REJECT_CODES = {"truncated", "invalid_utf8", "not_json", "not_an_object", "jsonb_refused"}
OTHER_EXPECT = {"load", "skip_file", "duplicate_file", "ignore"}


# --- helpers --------------------------------------------------------------------------


def json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), "other")


def read_lines(path: Path) -> list[bytes]:
    """Physical lines of a log file (no trailing newline in the feed)."""
    return path.read_bytes().split(b"\n")


def log_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "log_data").rglob("*.json"))


def song_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "song_data").rglob("*.json"))


def log_events(root: Path) -> Iterator[tuple[str, int, dict]]:
    """(relative file, 1-based line number, object) for every line of a clean feed."""
    for path in log_files(root):
        rel = path.relative_to(root).as_posix()
        for number, raw in enumerate(read_lines(path), start=1):
            yield rel, number, json.loads(raw)


def songs_by_id(root: Path) -> dict[str, dict]:
    return {
        song["song_id"]: song
        for song in (json.loads(p.read_text(encoding="ascii")) for p in song_files(root))
    }


def truth_rows(root: Path) -> list[dict[str, str]]:
    lines = (root / "_truth" / "songplays.csv").read_text(encoding="ascii").splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


def normalise(text: str) -> str:
    return repair_mojibake(text).strip().casefold()


def all_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GENERATOR, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feed")
    generate(GeneratorConfig(out=out, **SMALL))
    return out


@pytest.fixture(scope="module")
def events(feed: Path) -> list[tuple[str, int, dict]]:
    return list(log_events(feed))


@pytest.fixture(scope="module")
def summary(feed: Path) -> dict:
    return json.loads((feed / "_truth" / "summary.json").read_text())


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    generate(GeneratorConfig(out=out, faults=True, **SMALL))
    return out


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.is_dir():
        pytest.skip(f"the public Udacity sample is not at {SAMPLE} (../shared absent)")
    return SAMPLE


def schema(objects: Iterator[dict]) -> tuple[list[tuple[str, ...]], dict[str, set[str]]]:
    """(distinct key orders, JSON types seen per field) over ``objects``."""
    orders: set[tuple[str, ...]] = set()
    types: dict[str, set[str]] = defaultdict(set)
    for obj in objects:
        orders.add(tuple(obj))
        for key, value in obj.items():
            types[key].add(json_type(value))
    return sorted(orders), dict(types)


# --- shape against the real sample ----------------------------------------------------


def test_log_lines_have_the_sample_fields_order_and_types(sample: Path, feed: Path) -> None:
    real_orders, real_types = schema(obj for _, _, obj in log_events(sample))
    ours_orders, ours_types = schema(obj for _, _, obj in log_events(feed))
    assert len(real_orders) == 1
    assert ours_orders == real_orders
    assert ours_types == real_types


def test_song_files_have_the_sample_fields_order_and_types(sample: Path, feed: Path) -> None:
    def objects(root: Path) -> Iterator[dict]:
        return (json.loads(p.read_text(encoding="utf-8")) for p in song_files(root))

    real_orders, real_types = schema(objects(sample))
    ours_orders, ours_types = schema(objects(feed))
    assert ours_orders == real_orders
    assert ours_types == real_types


def test_mojibake_has_the_sample_form(sample: Path) -> None:
    # The sample shows "Désir" double-encoded through latin-1; ours must look the same.
    assert mojibake("Désir") == "D\u00c3\u0083\u00c2\u00a9sir"
    raw = b"\n".join(b"\n".join(read_lines(p)) for p in log_files(sample))
    assert b"\\u00c3\\u0083\\u00c2\\u00a9" in raw
    mangled = {
        obj[k]
        for _, _, obj in log_events(sample)
        for k in ("artist", "song")
        if obj[k] and "\u00c3\u0083" in obj[k]
    }
    assert mangled
    for text in mangled:
        fixed = repair_mojibake(text)
        assert "\u00c3" not in fixed and mojibake(fixed) == text


# --- layout and encoding --------------------------------------------------------------


def test_layout_matches_the_feed(feed: Path) -> None:
    files = all_files(feed)
    data = [name for name in files if not name.startswith("_truth/")]
    assert set(files) - set(data) == {"_truth/songplays.csv", "_truth/summary.json"}
    logs = [n for n in data if n.startswith("log_data/")]
    songs = [n for n in data if n.startswith("song_data/")]
    assert len(logs) + len(songs) == len(data)
    assert len(logs) == SMALL["days"] and len(songs) == SMALL["songs"]
    for name in logs:
        m = LOG_NAME.match(name)
        assert m, name
        assert m[1] == m[3] and m[2] == m[4]
        date(int(m[3]), int(m[4]), int(m[5]))
    assert sorted(logs)[0].endswith("2018-11-01-events.json")
    for name in songs:
        m = SONG_NAME.match(name)
        assert m, name
        assert (m[1], m[2], m[3]) == (m[4][2], m[4][3], m[4][4])
    for name in data:
        content = files[name]
        assert content and not content.endswith(b"\n"), name
        assert content.isascii(), name


def test_lines_are_written_like_the_feed(feed: Path, events: list) -> None:
    # Compact separators, \u escapes, "/" escaped: re-encoding reproduces every line.
    for path in log_files(feed):
        for raw in read_lines(path):
            obj = json.loads(raw)
            assert json.dumps(obj, separators=(",", ":")).replace("/", "\\/") == raw.decode()
    for path in song_files(feed):
        text = path.read_text(encoding="ascii")
        obj = json.loads(text)  # the whole file is one object
        assert json.dumps(obj) == text
        assert path.stem == path.name[: -len(".json")]
    song = json.loads(song_files(feed)[0].read_text())
    assert re.fullmatch(r"AR[A-Z0-9]{16}", song["artist_id"])
    assert re.fullmatch(r"SO[A-Z0-9]{16}", song["song_id"])
    assert song["num_songs"] == 1


def test_catalogue_has_the_feed_quirks(feed: Path) -> None:
    songs = list(songs_by_id(feed).values())
    assert any(s["artist_latitude"] is None for s in songs)
    assert any(s["artist_latitude"] is not None for s in songs)
    assert any(s["artist_location"] == "" for s in songs)
    assert any(s["year"] == 0 for s in songs)
    per_artist = Counter(s["artist_id"] for s in songs)
    assert max(per_artist.values()) >= 2
    names = {s["artist_id"]: s["artist_name"] for s in songs}
    assert len(names) == len(per_artist)
    non_ascii = [s for s in songs if not (s["title"].isascii() and s["artist_name"].isascii())]
    assert len(non_ascii) >= 0.15 * len(songs)


# --- behaviour ------------------------------------------------------------------------


def test_page_mix_and_logged_out_events(events: list, summary: dict) -> None:
    pages = Counter(obj["page"] for _, _, obj in events)
    share = pages["NextSong"] / len(events)
    assert 0.78 <= share <= 0.88, share
    assert {"Home", "Login", "Logout", "Settings", "Help", "About", "Error"} <= set(pages)
    logged_out = [obj for _, _, obj in events if obj["auth"] == "Logged Out"]
    assert 0.01 * len(events) <= len(logged_out) <= 0.08 * len(events)
    for obj in logged_out:
        assert obj["userId"] == ""
        assert obj["page"] in {"Home", "Login", "About", "Help"}
        assert obj["level"] in {"free", "paid"}
        for key in ("firstName", "lastName", "gender", "location", "registration", "userAgent"):
            assert obj[key] is None
    for _, _, obj in events:
        assert (obj["artist"] is None) == (obj["page"] != "NextSong")
        assert obj["auth"] in {"Logged In", "Logged Out"}
        assert (obj["userId"] == "") == (obj["auth"] == "Logged Out")
        assert obj["method"] in {"GET", "PUT"}
        expected_status = 404 if obj["page"] == "Error" else 200
        if obj["page"] in {"Login", "Logout", "Save Settings"} or obj["page"].startswith("Submit"):
            expected_status = 307
        assert obj["status"] == expected_status
    assert summary["events"] == len(events)
    assert summary["nextsong"] == pages["NextSong"]
    assert summary["logged_out"] == len(logged_out)


def test_sessions_and_users_behave_like_eventsim(events: list) -> None:
    by_file: dict[str, list[int]] = defaultdict(list)
    sessions: dict[int, list[tuple[int, int]]] = defaultdict(list)
    users: dict[str, set[tuple]] = defaultdict(set)
    for rel, _, obj in events:
        by_file[rel].append(obj["ts"])
        sessions[obj["sessionId"]].append((obj["ts"], obj["itemInSession"]))
        day = datetime.fromtimestamp(obj["ts"] / 1000, tz=UTC).date().isoformat()
        assert rel.endswith(f"{day}-events.json")  # a file holds its UTC day
        if obj["userId"]:
            personal = ("firstName", "lastName", "gender", "location", "registration", "userAgent")
            users[obj["userId"]].add(tuple(obj[k] for k in personal))
    for ts in by_file.values():
        assert ts == sorted(ts)
    for items in sessions.values():
        items.sort()
        assert [i for _, i in items] == list(range(len(items)))
    assert any(len(items) > 20 for items in sessions.values())
    assert all(len(attrs) == 1 for attrs in users.values())
    assert len(users) > 10
    # NextSong follows NextSong after about the previous song's length.
    gaps = []
    ordered = sorted(
        (obj for _, _, obj in events), key=lambda o: (o["sessionId"], o["itemInSession"])
    )
    for a, b in pairwise(ordered):
        if a["sessionId"] == b["sessionId"] and a["page"] == b["page"] == "NextSong":
            gaps.append((b["ts"] - a["ts"]) / 1000 - a["length"])
    assert gaps and all(-1.0 < g <= 0.0 for g in gaps)


def test_daily_rhythm(events: list) -> None:
    hours = Counter(datetime.fromtimestamp(o["ts"] / 1000, tz=UTC).hour for _, _, o in events)
    afternoon = sum(hours[h] for h in range(14, 20))
    night = sum(hours[h] for h in range(1, 7))
    assert afternoon > 1.5 * night


def test_level_changes_take_effect_from_the_next_event(events: list, summary: dict) -> None:
    per_user: dict[str, list[dict]] = defaultdict(list)
    for _, _, obj in events:  # files in date order, lines in ts order
        if obj["userId"]:
            per_user[obj["userId"]].append(obj)
    changes = 0
    for stream in per_user.values():
        for before, after in pairwise(stream):
            if before["page"] == "Submit Upgrade":
                assert (before["level"], after["level"]) == ("free", "paid")
                changes += 1
            elif before["page"] == "Submit Downgrade":
                assert (before["level"], after["level"]) == ("paid", "free")
                changes += 1
            else:
                assert before["level"] == after["level"]
    changed = [u for u, s in per_user.items() if len({o["level"] for o in s}) > 1]
    assert changes >= 1 and changed
    assert summary["level_changes"] == sum(
        1 for _, _, o in events if o["page"] in {"Submit Upgrade", "Submit Downgrade"}
    )
    assert summary["users_changing_level"] == len(changed)


# --- catalogue matches and the truth file ---------------------------------------------


def test_truth_file_describes_every_nextsong(feed: Path, events: list, summary: dict) -> None:
    rows = truth_rows(feed)
    plays = {(rel, n): obj for rel, n, obj in events if obj["page"] == "NextSong"}
    assert len(rows) == len(plays) == summary["nextsong"]
    variants = Counter(row["variant"] for row in rows)
    assert variants == Counter({k: v for k, v in summary["variants"].items() if v})
    for row in rows:
        obj = plays[(row["source_file"], int(row["line_number"]))]
        assert int(row["ts"]) == obj["ts"]
        assert row["user_id"] == obj["userId"]
        assert int(row["session_id"]) == obj["sessionId"]
        assert int(row["item_in_session"]) == obj["itemInSession"]
        assert row["fault"] == ""
        assert (row["song_id"] == "") == (row["variant"] == "not_in_catalogue")


def test_exact_matches_measured_from_the_files_equal_the_truth(
    feed: Path, events: list, summary: dict
) -> None:
    catalogue = {
        (s["title"], s["artist_name"], s["duration"]): s["song_id"]
        for s in songs_by_id(feed).values()
    }
    matched = {
        (rel, n): catalogue[(o["song"], o["artist"], o["length"])]
        for rel, n, o in events
        if o["page"] == "NextSong" and (o["song"], o["artist"], o["length"]) in catalogue
    }
    exact = {
        (r["source_file"], int(r["line_number"])): r["song_id"]
        for r in truth_rows(feed)
        if r["variant"] == "exact"
    }
    assert matched == exact
    nextsong = summary["nextsong"]
    share = (nextsong - summary["variants"]["not_in_catalogue"]) / nextsong
    assert abs(share - 0.7) < 0.05
    assert 0.08 < 1 - len(exact) / (nextsong * share) < 0.22  # near-miss share ~0.15


def test_near_misses_match_only_after_repair(feed: Path, events: list) -> None:
    songs = songs_by_id(feed)
    plays = {(rel, n): o for rel, n, o in events}
    kinds: Counter[str] = Counter()
    for row in truth_rows(feed):
        if row["variant"] in {"exact", "not_in_catalogue"}:
            continue
        kinds[row["variant"]] += 1
        play = plays[(row["source_file"], int(row["line_number"]))]
        song = songs[row["song_id"]]
        assert song["artist_id"] == row["artist_id"]
        logged = (play["song"], play["artist"], play["length"])
        assert logged != (song["title"], song["artist_name"], song["duration"])
        assert normalise(play["song"]) == normalise(song["title"])
        assert normalise(play["artist"]) == normalise(song["artist_name"])
        assert math.isclose(play["length"], song["duration"], abs_tol=0.01)
        if row["variant"] == "mojibake":
            assert "\u00c3" in play["song"] + play["artist"]
        if row["variant"] == "whitespace":
            assert play["song"] != play["song"].strip() or play["artist"] != play["artist"].strip()
        if row["variant"] == "duration_rounding":
            assert play["length"] != song["duration"]
    assert set(kinds) == {"case", "whitespace", "duration_rounding", "mojibake"}


def test_plays_outside_the_catalogue_match_nothing(feed: Path, events: list) -> None:
    songs = list(songs_by_id(feed).values())
    keys = {(normalise(s["title"]), normalise(s["artist_name"])) for s in songs}
    plays = {(rel, n): o for rel, n, o in events}
    outside = [r for r in truth_rows(feed) if r["variant"] == "not_in_catalogue"]
    assert outside
    for row in outside:
        play = plays[(row["source_file"], int(row["line_number"]))]
        assert (normalise(play["song"]), normalise(play["artist"])) not in keys


# --- determinism ----------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    small = {**SMALL, "days": 3, "songs": 40}
    runs = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        generate(GeneratorConfig(out=tmp_path / name, **{**small, "seed": seed}))
        runs.append(all_files(tmp_path / name))
    assert runs[0] == runs[1]
    assert set(runs[0]) != set(runs[2]) or runs[0] != runs[2]
    assert runs[0]["log_data/2018/11/2018-11-01-events.json"] != runs[2].get(
        "log_data/2018/11/2018-11-01-events.json"
    )


def test_output_does_not_depend_on_hash_randomisation(tmp_path: Path) -> None:
    args = ("--days", "2", "--users", "8", "--songs", "30", "--events-per-day", "150", "--faults")
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = run_cli(*args, "--quiet", "--out", tmp_path / hash_seed, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(all_files(tmp_path / hash_seed))
    assert outputs[0] == outputs[1]


# --- faults ---------------------------------------------------------------------------


def _lines_of(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    return raw.replace(b"\r\n", b"\n").split(b"\n")


def test_fault_manifest_lists_every_kind_and_each_is_checkable(faulty: Path) -> None:
    manifest = json.loads((faulty / "_faults.json").read_text())
    assert {entry["kind"] for entry in manifest} == set(EXPECT)
    for entry in manifest:
        assert set(entry) >= {"kind", "file", "line_number", "expect"}
        assert entry["expect"] in REJECT_CODES | OTHER_EXPECT
        assert entry["expect"] == EXPECT[entry["kind"]]
        path = faulty / entry["file"]
        assert path.is_file(), entry
        kind, number = entry["kind"], entry["line_number"]
        lines = _lines_of(path)
        line = lines[number - 1] if number else b""
        if kind == "truncated_line":
            assert number == len(lines) and line.startswith(b"{")
            with pytest.raises(json.JSONDecodeError):
                json.loads(line)
        elif kind == "invalid_utf8":
            with pytest.raises(UnicodeDecodeError):
                line.decode("utf-8")
        elif kind == "blank_line":
            assert line == b""
        elif kind == "whitespace_line":
            assert line and not line.strip()
        elif kind == "not_an_object":
            assert not isinstance(json.loads(line), dict)
        elif kind == "not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(line.decode("utf-8"))
        elif kind == "nul_in_string":
            assert "\x00" in json.loads(line)["song"]
        elif kind == "ts_as_string":
            ts = json.loads(line)["ts"]
            assert isinstance(ts, str) and ts.isdigit()
        elif kind == "ts_not_a_number":
            ts = json.loads(line)["ts"]
            assert isinstance(ts, str) and not ts.isdigit()
        elif kind == "user_id_as_number":
            assert isinstance(json.loads(line)["userId"], int)
        elif kind == "length_as_string":
            length = json.loads(line)["length"]
            assert isinstance(length, str) and float(length) > 0
        elif kind == "bom_crlf":
            raw = path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
            assert raw.count(b"\n") == raw.count(b"\r\n")
        elif kind == "song_bom":
            raw = path.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf")
            assert isinstance(json.loads(raw[3:]), dict)
        elif kind == "non_data_file":
            assert not path.name.endswith(".json")
        elif kind == "duplicate_file":
            original = path.with_name(path.name.replace(" (1).json", ".json"))
            assert original.is_file() and original.read_bytes() == path.read_bytes()
        else:
            pytest.fail(f"unchecked fault kind {kind}")


def test_lines_without_faults_still_parse(faulty: Path) -> None:
    manifest = json.loads((faulty / "_faults.json").read_text())
    damaged = {(e["file"], e["line_number"]) for e in manifest if e["line_number"]}
    for path in log_files(faulty):
        rel = path.relative_to(faulty).as_posix()
        for number, line in enumerate(_lines_of(path), start=1):
            if (rel, number) not in damaged:
                assert isinstance(json.loads(line), dict), (rel, number)


def test_faults_change_no_events_and_the_truth_says_which_are_lost(
    feed: Path, faulty: Path
) -> None:
    def key(row: dict[str, str]) -> tuple[str, ...]:
        return tuple(row[k] for k in ("ts", "user_id", "session_id", "item_in_session"))

    clean = {key(r): r for r in truth_rows(feed)}
    rows = truth_rows(faulty)
    assert {key(r): (r["song_id"], r["variant"]) for r in rows} == {
        k: (r["song_id"], r["variant"]) for k, r in clean.items()
    }
    manifest = json.loads((faulty / "_faults.json").read_text())
    at = {(e["file"], e["line_number"]): e["kind"] for e in manifest if e["line_number"]}
    for row in rows:
        where = (row["source_file"], int(row["line_number"]))
        assert row["fault"] == at.get(where, ""), where
        line = _lines_of(faulty / row["source_file"])[int(row["line_number"]) - 1]
        if row["fault"] not in LOSES_EVENT:
            obj = json.loads(line)
            assert str(obj["sessionId"]) == row["session_id"]
            assert obj["itemInSession"] == int(row["item_in_session"])
    assert not any(r["source_file"].endswith(" (1).json") for r in rows)
    summary = json.loads((faulty / "_truth" / "summary.json").read_text())
    lost = [r for r in rows if r["fault"] in LOSES_EVENT]
    assert summary["faults"]["nextsong_lost"] == len(lost)
    assert summary["faults"]["events_lost"] >= len(lost)


# --- command line ---------------------------------------------------------------------


def test_help_exits_zero() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--out", "--days", "--start-date", "--users", "--songs", "--events-per-day"):
        assert option in result.stdout
    for option in ("--seed", "--match-share", "--near-miss-share", "--faults", "--force"):
        assert option in result.stdout
    assert "examples:" in result.stdout


def test_cli_writes_a_summary_and_refuses_to_overwrite(tmp_path: Path) -> None:
    args = ("--days", "2", "--users", "5", "--songs", "10", "--events-per-day", "50")
    first = run_cli(*args, "--quiet", cwd=tmp_path)  # default --out is data/sample
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert len(first.stdout.strip().splitlines()) == 1
    assert first.stdout.startswith("Wrote ")
    out = tmp_path / "data" / "sample"
    assert (out / "log_data" / "2018" / "11" / "2018-11-02-events.json").is_file()
    before = all_files(out)

    again = run_cli(*args, "--out", out)
    assert again.returncode == 2
    assert len(again.stderr.strip().splitlines()) == 1
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert again.stdout == ""
    assert all_files(out) == before

    forced = run_cli(*args, "--out", out, "--force", "--seed", "3")
    assert forced.returncode == 0, forced.stderr
    assert "events" in forced.stderr  # progress goes to stderr
    assert all_files(out) != before


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    for bad in (("--match-share", "1.5"), ("--days", "0"), ("--start-date", "2018-13-01")):
        result = run_cli("--out", tmp_path / "x", *bad)
        assert result.returncode == 2, bad
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()
