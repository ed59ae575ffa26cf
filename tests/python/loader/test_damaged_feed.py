"""Every kind of damage a feed delivers, through the loader's CLI and dbt build.

One feed holds one file per class of damage, each line with the outcome the
README documents: landed in raw.events, or rejected with a reason. Then the
counts must reconcile (every non-blank input line is in raw.events or
raw.rejects, once) and `dbt build` must still succeed.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from feed_lines import EVENT as OK_EVENT
from feed_lines import summary_of
from helpers import connect, run_dbt, run_loader

EV = "events"  # the line lands in raw.events
INJECTION = "x'); drop table raw.events; -- \"; select 1; $$ \\ E'\\x00'"


def event(**changes: object) -> bytes:
    return json.dumps({**OK_EVENT, **changes}, ensure_ascii=False).encode()


def numbered(n: int, **changes: object) -> bytes:
    """A distinct valid event (its own item and ts), so dbt sees distinct plays."""
    return event(**{"itemInSession": n, "ts": 1541106106796 + n * 1000, **changes})


# file name -> (bytes, the outcome of each non-blank line in order)
CASES: dict[str, tuple[bytes, list[str]]] = {
    "2018/11/2018-11-01-events.json": (
        b"\n".join(numbered(n) for n in range(1, 4)),
        [EV, EV, EV],
    ),
    "truncated-last-line.json": (
        numbered(10) + b"\n" + numbered(11) + b"\n" + numbered(12)[:40],
        [EV, EV, "truncated"],
    ),
    "truncated-mid-file.json": (
        numbered(13) + b"\n" + numbered(14)[:50] + b"\n" + numbered(15) + b"\n",
        [EV, "not_json", EV],
    ),
    "invalid-utf8.json": (
        b"\n".join(
            [
                numbered(20),
                numbered(21).replace(b"You Gotta Be", b"You \xff\xfe Be"),
                numbered(22).replace(b"Kaylee", b"Kayl\xc0\xafee"),  # overlong encoding
                numbered(23).replace(b"Kaylee", b"Kayl\xe9e"),  # latin-1, not UTF-8
            ]
        ),
        [EV, "invalid_utf8", "invalid_utf8", "invalid_utf8"],
    ),
    "nul.json": (
        b"\n".join(
            [
                numbered(30, song="nul \u0000 inside"),  # the \u0000 escape
                numbered(31).replace(b"Kaylee", b"Kay\x00lee"),  # a raw NUL byte
                numbered(32),
            ]
        ),
        ["jsonb_refused", "not_json", EV],
    ),
    "bom-crlf.json": (
        b"\xef\xbb\xbf" + b"\r\n".join(numbered(n) for n in range(40, 43)) + b"\r\n",
        [EV, EV, EV],
    ),
    "control-bytes.json": (  # the fast COPY's quote and delimiter bytes, a CR inside
        b"\n".join(
            [
                numbered(46).replace(b'{"', b'{\r"', 1),  # CR as JSON whitespace: valid
                numbered(47).replace(b"Kaylee", b"Kay\x01lee"),  # raw control bytes in a
                numbered(48).replace(b"Kaylee", b"Kay\x02lee"),  # string: not JSON
                numbered(49) + b"\x02log_data/forged.json\x021",  # a row forged in CSV
            ]
        )
        + b"\n",
        [EV, "not_json", "not_json", "not_json"],
    ),
    "bom-mid-file.json": (  # two files concatenated, the second with its BOM
        numbered(44) + b"\n\xef\xbb\xbf" + numbered(45) + b"\n",
        [EV, "not_json"],
    ),
    "blank-lines.json": (
        b"\n\n" + numbered(50) + b"\n   \t\n\r\n" + numbered(51) + b"\n\n\n",
        [EV, EV],
    ),
    "empty.json": (b"", []),
    "only-blank.json": (b"\n \n\t\n\r\n", []),
    "not-objects.json": (
        b'[1, 2]\n"a string"\n42\nnull\ntrue\n{"ok": 1} {"two": 2}\nNaN\n',
        ["not_an_object"] * 5 + ["not_json", "not_json"],
    ),
    "wrong-types.json": (
        b"\n".join(
            [
                numbered(60, ts="1541106166796"),  # ts as numeric text: parsed
                event(itemInSession=61, ts="yesterday"),  # ts as words: no valid ts
                numbered(62, userId=8),  # userId as a number
                numbered(63, length="246.30812"),  # length as text
                numbered(64, sessionId="abc", itemInSession=1.5),
                numbered(65, registration="soon", status="OK"),
                numbered(66, song={"nested": ["object"]}, artist=["a", "list"]),
                numbered(67, page=7, level=None, userId=None),
                numbered(68, ts=-5, length=-1e308),
                numbered(69, ts="BIG").replace(b'"BIG"', b"1e400"),  # too big for a double
            ]
        ),
        [EV] * 10,
    ),
    "injection.json": (
        numbered(70, song=INJECTION, artist=INJECTION, firstName="Robert'); --"),
        [EV],
    ),
    "long-values.json": (
        b"\n".join(
            [
                numbered(80, song="s" * (3 * 1024 * 1024)),  # 3 MB title
                numbered(81, artist="a" * (20 * 1024 * 1024)),  # a line over 16 MB
                numbered(82, userAgent="u" * (1024 * 1024), location="l" * 100_000),
            ]
        ),
        [EV, EV, EV],
    ),
    'it\'s a "day"; drop table raw.events; --.json': (numbered(90), [EV]),
    "with space and ; semicolon.json": (numbered(91), [EV]),
    "non-ascii-日本-é-ü.json": (numbered(92, song="Désir 日本"), [EV]),
    "2018/11/2018-11-05-events.json.gz": (
        gzip.compress(b"\n".join(numbered(n) for n in range(100, 103))),
        [EV, EV, EV],
    ),
    "gz-truncated-line.json.gz": (
        gzip.compress(numbered(104) + b"\n" + numbered(105)[:30]),
        [EV, "truncated"],
    ),
}
NOT_DATA = ["README.txt", ".DS_Store", "2018-11-01-events.json.bak", "notes.JSON", "x.json.swp"]


def source_name(relative: str) -> str:
    return f"log_data/{relative}"


def non_blank_lines(path: Path) -> int:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return sum(1 for line in data.split(b"\n") if line.strip())


def build_feed(root: Path, outside: Path) -> Path:
    logs = root / "log_data"
    for relative, (data, _) in CASES.items():
        path = logs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for name in NOT_DATA:
        (logs / name).write_bytes(b"not data\n")
    # A name that is not UTF-8 cannot be stored as text: skipped, named with U+FFFD.
    with open(os.fsencode(logs) + b"/latin-1-\xe9.json", "wb") as stream:
        stream.write(numbered(99) + b"\n")
    # A day file delivered a second time under another name.
    day = logs / "2018/11/2018-11-01-events.json"
    shutil.copy(day, day.with_name("2018-11-01-events (1).json"))
    # Links: to a file inside (loaded under its own name), to a folder inside,
    # a loop, a link to nowhere, and links out of the feed's folder (not followed).
    (logs / "links").mkdir()
    os.symlink(day, logs / "links" / "same-day.json")
    os.symlink(logs / "2018", logs / "links" / "2018-again")
    os.symlink(logs, logs / "links" / "loop")
    os.symlink(logs / "missing.json", logs / "links" / "dangling.json")
    outside.mkdir()
    (outside / "secret.json").write_bytes(b'{"password": "hunter2"}\npassword=hunter2\n')
    os.symlink(outside / "secret.json", logs / "links" / "secret.json")
    os.symlink(outside, logs / "links" / "outside-folder")
    # Song files: pretty-printed, BOM, wrong types, not an object, empty.
    songs = root / "song_data" / "A" / "B" / "C"
    songs.mkdir(parents=True)
    song = {
        "num_songs": 1,
        "artist_id": "AR62SOJ1187FB47BB5",
        "artist_latitude": None,
        "artist_longitude": None,
        "artist_location": "",
        "artist_name": "Des'ree",
        "song_id": "SOGVQGJ12AB017F169",
        "title": "You Gotta Be",
        "duration": 246.30812,
        "year": 1994,
    }
    (songs / "TRPRETTY.json").write_text(json.dumps(song, indent=4))
    (songs / "TRBOM.json").write_bytes(
        b"\xef\xbb\xbf" + json.dumps({**song, "song_id": "SOBOM", "title": "Bom"}).encode()
    )
    wrong = {**song, "song_id": "SOWRONG", "duration": "long", "year": "1994", "num_songs": []}
    (songs / "TRWRONG.json").write_text(json.dumps(wrong))
    # Numbers that parse but do not fit the marts' numeric(p, s) columns.
    huge = {
        **song,
        "song_id": "SOHUGE",
        "artist_id": "ARHUGE",
        "duration": 1e300,
        "artist_latitude": 45.123456789,
        "artist_longitude": -179.999999999,
    }
    (songs / "TRHUGE.json").write_text(json.dumps(huge))
    (songs / "TRARRAY.json").write_text(json.dumps([song]))
    (songs / "TREMPTY.json").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, server_env):
    """The hostile feed, loaded once into a database of its own, then dbt built."""
    import uuid

    import psycopg
    from psycopg import sql

    from helpers import admin_conninfo

    tmp = tmp_path_factory.mktemp("hostile")
    feed = build_feed(tmp / "feed", tmp / "outside")
    name = f"sparkify_pytest_{uuid.uuid4().hex[:12]}"
    admin = admin_conninfo(server_env)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    env = {**server_env, "PGDATABASE": name}
    try:
        result = run_loader(env, "--data-dir", feed, "--json")
        built = run_dbt(env, tmp, "build")
        yield env, feed, result, built
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def test_loader_succeeds_without_traceback(loaded):
    _, _, result, _ = loaded
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_every_line_lands_where_documented(loaded):
    env, _, _, _ = loaded
    with connect(env) as conn:
        events = {
            (f, n) for f, n in conn.execute("select source_file, line_number from raw.events")
        }
        rejects = dict(
            ((f, n), reason)
            for f, n, reason in conn.execute(
                "select source_file, line_number, reason from raw.rejects"
            )
        )
    for relative, (data, outcomes) in CASES.items():
        text = gzip.decompress(data) if relative.endswith(".gz") else data
        numbers = [n for n, line in enumerate(text.split(b"\n"), start=1) if line.strip()]
        assert len(numbers) == len(outcomes), relative
        name = source_name(relative)
        for number, outcome in zip(numbers, outcomes, strict=True):
            if outcome == EV:
                assert (name, number) in events, (relative, number)
                assert (name, number) not in rejects, (relative, number)
            else:
                assert rejects.get((name, number)) == outcome, (relative, number)
                assert (name, number) not in events, (relative, number)


def test_counts_reconcile(loaded):
    """Every non-blank line of every data file the loader may read: once, somewhere."""
    env, feed, _, _ = loaded
    logs = feed / "log_data"
    # What the loader should read, worked out without following any link: the real
    # files, plus the link to a file inside the feed. (The link to the folder 2018/
    # reaches a folder already read: read once. The rest lead out, or nowhere.)
    readable = {
        path.relative_to(logs).as_posix(): path
        for path in logs.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and "links" not in path.parts
        and "latin-1-" not in path.name
    }
    readable["links/same-day.json"] = logs / "2018/11/2018-11-01-events.json"
    expected = {
        f"log_data/{relative}": non_blank_lines(path)
        for relative, path in readable.items()
        if relative.endswith((".json", ".json.gz"))
    }
    with connect(env) as conn:
        got = dict(
            conn.execute(
                "select source_file, sum(n)::int from ("
                " select source_file, count(*) as n from raw.events group by 1"
                " union all select source_file, count(*) from raw.rejects"
                " where source_file like 'log_data/%%' group by 1) as t group by 1"
            ).fetchall()
        )
        manifest = dict(
            conn.execute(
                "select source_file, row_count + reject_count from raw.load_manifest "
                "where source_kind = 'events'"
            ).fetchall()
        )
    expected_nonzero = {name: n for name, n in expected.items() if n}
    assert got == expected_nonzero
    assert manifest == expected  # empty files are loaded too, with 0 lines


def test_file_names_and_payloads_are_data(loaded):
    env, _, _, _ = loaded
    with connect(env) as conn:
        names = {r[0] for r in conn.execute("select source_file from raw.load_manifest")}
        song = conn.execute(
            "select payload->>'song', payload->>'firstName' from raw.events "
            "where source_file = 'log_data/injection.json'"
        ).fetchone()
        long_line = conn.execute(
            "select length(payload->>'artist') from raw.events "
            "where source_file = 'log_data/long-values.json' and line_number = 2"
        ).fetchone()[0]
        tables = {r[0] for r in conn.execute("select tablename from pg_tables")}
    for relative in CASES:
        assert source_name(relative) in names, relative
    assert song == (INJECTION, "Robert'); --")
    assert long_line == 20 * 1024 * 1024
    assert {"events", "rejects", "load_manifest", "songs"} <= tables


def test_rejects_keep_the_bytes_as_read(loaded):
    env, _, _, _ = loaded
    with connect(env) as conn:
        rows = conn.execute(
            "select line_number, line from raw.rejects "
            "where source_file = 'log_data/invalid-utf8.json' order by 1"
        ).fetchall()
    lines = CASES["invalid-utf8.json"][0].split(b"\n")
    assert [bytes(line) for _, line in rows] == [lines[n - 1] for n, _ in rows]


def test_non_data_files_and_links_are_named_not_loaded(loaded):
    env, _, result, _ = loaded
    for name in NOT_DATA:
        assert f"log_data/{name}" in result.stderr, name
    assert "log_data/latin-1-\ufffd.json" in result.stderr
    assert summary_of(result)["files_skipped"] == len(NOT_DATA) + 1
    assert "outside the feed's folder" in result.stderr
    assert "dangling.json: a broken link" in result.stderr
    with connect(env) as conn:
        leaked = conn.execute(
            "select count(*) from raw.rejects where position('hunter2'::bytea in line) > 0"
        ).fetchone()[0]
        leaked += conn.execute(
            "select count(*) from raw.events where payload::text like '%%hunter2%%'"
        ).fetchone()[0]
        linked = {
            r[0]
            for r in conn.execute(
                "select source_file from raw.load_manifest where source_file like '%%links/%%'"
            )
        }
    assert leaked == 0
    assert "log_data/links/same-day.json" in linked  # a link inside the feed is a file
    assert not any("loop/" in name for name in linked)


def test_song_files(loaded):
    env, _, _, _ = loaded
    with connect(env) as conn:
        songs = {
            r[0].rsplit("/", 1)[1]
            for r in conn.execute("select source_file from raw.songs where line_number = 1")
        }
        rejects = dict(
            (f.rsplit("/", 1)[1], reason)
            for f, reason in conn.execute(
                "select source_file, reason from raw.rejects where source_file like 'song_data/%%'"
            )
        )
    assert songs == {"TRPRETTY.json", "TRBOM.json", "TRWRONG.json", "TRHUGE.json"}
    assert rejects == {"TRARRAY.json": "not_an_object"}  # and TREMPTY.json: no line at all


def test_dbt_build_succeeds_and_counts_each_play_once(loaded):
    env, _, _, built = loaded
    assert built.returncode == 0, built.stdout[-4000:]
    with connect(env) as conn:
        plays = conn.execute("select count(*) from analytics.songplays").fetchone()[0]
        day_one = conn.execute(
            "select count(*) from analytics.songplays where start_time < '2018-11-01 21:01:50'"
        ).fetchone()[0]
    assert plays > 0
    # Day 1 is in raw three times (its own name, "(1)" and a link): its plays count once.
    assert day_one == 3


def test_numbers_too_big_or_too_fine_for_the_marts_types_do_not_break_the_build(loaded):
    env, _, _, built = loaded
    assert built.returncode == 0, built.stdout[-4000:]
    with connect(env) as conn:
        duration = conn.execute(
            "select duration from analytics.songs where song_id = 'SOHUGE'"
        ).fetchone()
        position = conn.execute(
            "select latitude, longitude from analytics.artists where artist_id = 'ARHUGE'"
        ).fetchone()
    assert duration == (None,)  # out of range: unknown, as documented
    assert position == (Decimal("45.12346"), Decimal("-180.00000"))


def test_megabyte_ids_do_not_break_the_build(db_env, tmp_path):
    feed = tmp_path / "feed"
    huge = os.urandom(1024 * 1024).hex()  # random: PostgreSQL cannot compress it away
    (feed / "log_data").mkdir(parents=True)
    (feed / "song_data").mkdir()
    (feed / "log_data" / "huge-user.json").write_bytes(numbered(1, userId=huge))
    song = {"song_id": "SO" + huge, "artist_id": "AR" + huge, "title": "x", "duration": 1.0}
    (feed / "song_data" / "TRHUGE.json").write_text(json.dumps(song))
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    built = run_dbt(db_env, tmp_path, "build")
    assert built.returncode == 0, built.stdout[-4000:]
