"""The loads contract (raw.loads) against a real PostgreSQL.

One batch transaction of the loader is one load: raw.loads gets its row, with
its counts, in the same transaction as the rows, rejects and manifest entries
stamped with its load_id. dbt reads raw by that contract, so these tests check
it after a normal load, a replaced file, a failed batch, and an upgrade of a
database written by the loader before load ids existed. (kill -9 mid-load:
tests/python/loader/test_interruptions.py.)
"""

from __future__ import annotations

import hashlib
import os

import pytest

from feed_lines import FailingSource, event_line, make_feed, summary_of
from helpers import assert_loads_match, connect, load_accounts, run_loader, write_lines
from sparkify.loader.batch import load_batch
from sparkify.loader.planning import PlannedFile
from sparkify.loader.schema import ensure_schema


def loads(env: dict[str, str]) -> list[tuple]:
    with connect(env) as conn:
        return conn.execute(
            "select load_id, source_kind, file_count, row_count, reject_count, "
            "replaced_file_count from raw.loads order by 1"
        ).fetchall()


def test_each_batch_is_one_load_with_its_counts(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=5, per_day=4)
    day_3 = feed / "log_data" / "2018" / "11" / "2018-11-03-events.json"
    write_lines(day_3, [event_line(itemInSession=i) for i in range(3)] + [b"not json"])
    result = summary_of(
        run_loader(db_env, "--data-dir", feed, "--batch-files", "2", "--workers", "2", "--json")
    )
    landed = loads(db_env)
    # 5 event files two a batch, 3 song files two a batch: 3 + 2 loads.
    assert len(landed) == 5
    assert (result["loads"], result["first_load_id"], result["last_load_id"]) == (5, 1, 5)
    assert sorted(kind for _, kind, *_ in landed) == ["events"] * 3 + ["songs"] * 2
    assert sum(files for _, _, files, *_ in landed) == 8
    assert sum(rejects for *_, rejects, _ in landed) == 1
    assert all(replaced == 0 for *_, replaced in landed)
    assert_loads_match(db_env)
    with connect(db_env) as conn:
        # Written in one transaction: the load's time is its rows' and its files'.
        apart = conn.execute(
            "select count(*) from raw.events as e join raw.loads as l using (load_id) "
            "join raw.load_manifest as m using (source_file) "
            "where e.loaded_at <> l.loaded_at or m.loaded_at <> l.loaded_at"
        ).fetchone()[0]
    assert apart == 0

    # A file replaced: a new load, which says it replaced one file. The earlier
    # load keeps what it said it landed; the raw tables now hold less of it.
    write_lines(day_3, [event_line(itemInSession=i, song="changed") for i in range(2)])
    with connect(db_env) as conn:
        (earlier,) = conn.execute(
            "select load_id from raw.load_manifest where source_file like %s", ["%11-03%"]
        ).fetchone()
    again = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (again["loads"], again["first_load_id"], again["last_load_id"]) == (1, 6, 6)
    assert loads(db_env)[-1] == (6, "events", 1, 2, 0, 1)
    assert_loads_match(db_env, superseded=(earlier,))
    said, held = load_accounts(db_env)[earlier]
    assert held[1] == said[1] - 1  # one file fewer still its version
    assert held[3] == said[3] - 3 and held[4] == said[4] - 1  # its 3 rows and 1 reject

    # Nothing new: no load at all.
    nothing = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (nothing["files_loaded"], nothing["loads"], nothing["first_load_id"]) == (0, 0, 0)
    assert len(loads(db_env)) == 6


def test_failed_batch_leaves_no_load(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=4)
    source = FailingSource({"events": feed / "log_data"})
    files, _ = source.list_files()
    with connect(db_env) as conn:
        conn.autocommit = True
        ensure_schema(conn)
        with pytest.raises(OSError):
            load_batch(conn, source, [PlannedFile(f, None, replaces=False) for f in files])
    assert loads(db_env) == []
    assert run_loader(db_env, "--log-data", feed / "log_data").returncode == 0
    assert [kind for _, kind, *_ in loads(db_env)] == ["events"]
    assert_loads_match(db_env)


def test_fresh_schema_shape(db_env):
    with connect(db_env) as conn:
        ensure_schema(conn)
        conn.commit()
        columns = conn.execute(
            "select table_name, is_nullable, column_default, data_type "
            "from information_schema.columns "
            "where table_schema = 'raw' and column_name = 'load_id' order by 1"
        ).fetchall()
        indexes = conn.execute(
            "select indexname from pg_indexes where schemaname = 'raw' order by 1"
        ).fetchall()
    assert columns == [
        ("events", "NO", None, "bigint"),
        ("load_manifest", "NO", None, "bigint"),
        ("loads", "NO", None, "bigint"),
        ("rejects", "NO", None, "bigint"),
        ("songs", "NO", None, "bigint"),
    ]
    # The primary keys only: nothing on loaded_at or load_id to keep up while loading.
    assert [name for (name,) in indexes] == [
        "events_pkey",
        "load_manifest_pkey",
        "loads_pkey",
        "rejects_pkey",
        "songs_pkey",
    ]


# What src/sparkify/loader/schema.py created before load ids (its tables, the
# manifest's later columns and the loaded_at indexes).
OLD_DDL = """
create schema raw;
create table raw.load_manifest (
    source_file text primary key,
    source_kind text not null check (source_kind in ('songs', 'events')),
    checksum text not null,
    size_bytes bigint not null,
    row_count integer not null,
    reject_count integer not null,
    loaded_at timestamptz not null default now(),
    mtime_ns bigint,
    first_loaded_at timestamptz
);
create table raw.songs (
    source_file text not null, line_number integer not null, payload jsonb not null,
    loaded_at timestamptz not null default now(), primary key (source_file, line_number)
);
create table raw.events (
    source_file text not null, line_number integer not null, payload jsonb not null,
    loaded_at timestamptz not null default now(), primary key (source_file, line_number)
);
create table raw.rejects (
    source_file text not null, line_number integer not null, line bytea not null,
    reason text not null, detail text, rejected_at timestamptz not null default now(),
    primary key (source_file, line_number)
);
create index events_loaded_at_idx on raw.events (loaded_at);
create index songs_loaded_at_idx on raw.songs (loaded_at);
"""


def land_as_old_loader(env: dict[str, str], feed, name: str) -> None:
    """What the loader before load ids left for one event file: rows, rejects, manifest."""
    path = feed / name
    data = path.read_bytes()
    lines = data.split(b"\n")
    stat = os.stat(path)
    with connect(env) as conn:
        rows = rejects = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            if line.startswith(b"{"):
                conn.execute(
                    "insert into raw.events (source_file, line_number, payload) "
                    "values (%s, %s, %s::jsonb)",
                    [name, number, line.decode()],
                )
                rows += 1
            else:
                conn.execute(
                    "insert into raw.rejects (source_file, line_number, line, reason) "
                    "values (%s, %s, %s, 'not_json')",
                    [name, number, line],
                )
                rejects += 1
        conn.execute(
            "insert into raw.load_manifest (source_file, source_kind, checksum, size_bytes, "
            "row_count, reject_count, mtime_ns, first_loaded_at) "
            "values (%s, 'events', %s, %s, %s, %s, %s, now())",
            [name, hashlib.sha256(data).hexdigest(), stat.st_size, rows, rejects, stat.st_mtime_ns],
        )


def test_upgrade_keeps_old_rows_under_load_0(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=4)
    old_files = [f"log_data/2018/11/2018-11-0{day}-events.json" for day in (1, 2)]
    write_lines(feed / old_files[1], [event_line(itemInSession=i) for i in range(3)] + [b"bad"])
    with connect(db_env) as conn:
        conn.execute(OLD_DDL)
        conn.commit()
    for name in old_files:
        land_as_old_loader(db_env, feed, name)

    result = summary_of(run_loader(db_env, "--data-dir", feed, "--json"))
    assert (result["files_loaded"], result["files_replaced"], result["files_unchanged"]) == (
        4,
        0,
        2,
    )
    landed = loads(db_env)
    # Load 0: the two files the old loader landed, 4 + 3 rows and 1 reject, of no one kind.
    assert landed[0] == (0, None, 2, 7, 1, 0)
    assert [load_id for load_id, *_ in landed[1:]] == [1, 2]  # new ids start above 0
    assert_loads_match(db_env)
    with connect(db_env) as conn:
        old = conn.execute(
            "select source_file, min(load_id), max(load_id) from raw.events "
            "where source_file = any(%s) group by 1 order by 1",
            [old_files],
        ).fetchall()
        shape = conn.execute(
            "select table_name, column_default from information_schema.columns "
            "where table_schema = 'raw' and column_name = 'load_id' order by 1"
        ).fetchall()
        indexes = conn.execute(
            "select count(*) from pg_indexes where schemaname = 'raw' "
            "and indexname like '%%loaded_at%%'"
        ).fetchone()[0]
    assert old == [(name, 0, 0) for name in old_files]
    assert all(default is None for _, default in shape)  # new rows must name their load
    assert indexes == 0

    # The DDL runs again on every start: nothing changes, load 0 stays as it is.
    assert summary_of(run_loader(db_env, "--data-dir", feed, "--json"))["files_loaded"] == 0
    assert loads(db_env) == landed

    # An old file replaced: its rows move to the new load; load 0 holds less.
    write_lines(feed / old_files[0], [event_line(itemInSession=9, song="changed")])
    replaced = run_loader(db_env, "--data-dir", feed)
    assert replaced.returncode == 0, replaced.stderr
    assert loads(db_env)[-1] == (3, "events", 1, 1, 0, 1)
    assert_loads_match(db_env, superseded=(0,))
