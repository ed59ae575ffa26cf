"""load_raw.py --lake: the landing tables as Parquet files keep the loader's contract.

Read back with pyarrow the way Spark's views read them (macros/landing.sql):
committed loads only, each file's rows from the load of its current manifest row.
Marked `spark` (pyarrow comes with requirements-spark.txt): run by make test-spark.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import connect, generate_feed, run_loader

pytestmark = pytest.mark.spark


def lake_table(lake: Path, table: str) -> list[dict]:
    files = sorted((lake / table).glob("load-*.parquet"))
    if not files:
        return []
    return pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()


def current(lake: Path, table: str) -> list[dict]:
    """What the raw.<table> view on Spark holds."""
    committed = {row["load_id"] for row in lake_table(lake, "loads")}
    manifest: dict[str, dict] = {}
    for row in sorted(lake_table(lake, "load_manifest"), key=lambda r: r["load_id"]):
        if row["load_id"] in committed:
            manifest[row["source_file"]] = row
    versions = {(name, row["load_id"]) for name, row in manifest.items() if not row["is_removed"]}
    return [
        row for row in lake_table(lake, table) if (row["source_file"], row["load_id"]) in versions
    ]


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def lake_load(tmp_path: Path, feed: Path, lake: Path) -> dict:
    result = run_loader(dict(os.environ), "--data-dir", feed, "--lake", lake, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_lake_lands_the_same_rows_and_rejects_as_postgres(db_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--faults", "--days", "6", "--seed", "7")
    lake = tmp_path / "lake"
    stats = lake_load(tmp_path, feed, lake)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    with connect(db_env) as conn:
        pg_events = conn.execute("select source_file, line_number, payload from raw.events")
        pg_events = {(f, n, canonical(p)) for f, n, p in pg_events}
        pg_songs = conn.execute("select source_file, line_number, payload from raw.songs")
        pg_songs = {(f, n, canonical(p)) for f, n, p in pg_songs}
        pg_rejects = set(
            conn.execute("select source_file, line_number, line, reason from raw.rejects")
        )
    as_rows = {
        kind: {
            (r["source_file"], r["line_number"], canonical(json.loads(r["payload"])))
            for r in current(lake, kind)
        }
        for kind in ("events", "songs")
    }
    # jsonb keeps its own key order: compare parsed objects.
    assert as_rows["events"] == pg_events
    assert as_rows["songs"] == pg_songs
    lake_rejects = {
        (r["source_file"], r["line_number"], r["line"], r["reason"])
        for r in current(lake, "rejects")
    }
    assert lake_rejects == pg_rejects and pg_rejects  # the faults make rejects
    assert stats["rejects"] == len(pg_rejects)


def test_rerun_loads_nothing_and_a_changed_file_replaces_its_rows(tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "3")
    lake = tmp_path / "lake"
    first = lake_load(tmp_path, feed, lake)
    assert first["loads"] >= 2 and first["event_rows"] > 0
    assert lake_load(tmp_path, feed, lake)["loads"] == 0

    day = sorted((feed / "log_data").rglob("*-events.json"))[0]
    name = str(day.relative_to(feed))
    lines = day.read_bytes().splitlines()[:5]
    day.write_bytes(b"\n".join(lines) + b"\n")
    again = lake_load(tmp_path, feed, lake)
    assert (again["loads"], again["files_replaced"], again["event_rows"]) == (1, 1, 5)
    rows = [row for row in current(lake, "events") if row["source_file"] == name]
    assert sorted(row["line_number"] for row in rows) == [1, 2, 3, 4, 5]
    assert {row["load_id"] for row in rows} == {again["last_load_id"]}
    loads = {row["load_id"]: row for row in lake_table(lake, "loads")}
    assert loads[again["last_load_id"]]["replaced_file_count"] == 1


def test_a_load_that_never_committed_is_invisible_and_removed_by_the_next_run(tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2")
    lake = tmp_path / "lake"
    stats = lake_load(tmp_path, feed, lake)
    before = current(lake, "events")
    # A run killed after writing its rows and manifest, before its loads/ file:
    # the same files again under a new load id, with no commit.
    orphan = stats["last_load_id"] + 1
    for table in ("events", "load_manifest"):
        source = sorted((lake / table).glob("load-*.parquet"))[0]
        copy = pq.read_table(source)
        copy = copy.set_column(
            copy.schema.get_field_index("load_id"),
            "load_id",
            pa.array([orphan] * copy.num_rows, pa.int64()),
        )
        pq.write_table(copy, lake / table / f"load-{orphan:010d}.parquet")
    assert current(lake, "events") == before
    assert lake_load(tmp_path, feed, lake)["loads"] == 0
    assert not list(lake.rglob(f"load-{orphan:010d}*.parquet"))
    assert current(lake, "events") == before
    shutil.rmtree(lake)
