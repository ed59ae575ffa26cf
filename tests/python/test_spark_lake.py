"""load_raw.py --lake: the landing tables as Parquet files keep the loader's contract.

Read back with pyarrow the way Spark's views read them (macros/landing.sql):
committed loads only, each file's rows from the load of its current manifest row.
Marked `spark` (pyarrow comes with requirements-spark.txt): run by make test-spark.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fault_proxy import FaultProxy, Rule
from helpers import connect, generate_feed, run_loader
from raw_loader import lake as lake_loader
from raw_loader.options import LoadOptions
from raw_loader.run import resolve_roots, source_for
from raw_loader.run import run as pg_run
from s3_server import MotoServer, bucket, moto, upload_feed  # noqa: F401
from spark_warehouse import current, lake_table

pytestmark = pytest.mark.spark


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def lake_load(
    tmp_path: Path, feed: Path | str, lake: Path, *args: str, env: dict | None = None
) -> dict:
    result = run_loader(
        env or dict(os.environ), "--data-dir", feed, "--lake", lake, "--json", *args
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lake_files(lake: Path) -> dict[str, bytes]:
    """Every file the lake holds, by path: what a refused run must leave alone."""
    return {
        str(path.relative_to(lake)): path.read_bytes()
        for path in sorted(lake.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


# What a refusal of another feed names: the first file and the feed it came from.
OTHER_FEED = re.compile(r"files loaded from another feed \(e\.g\. (\S+) from (\S+)\)")


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
        for column in {"load_id", "recorded_by_load"} & set(copy.column_names):
            copy = copy.set_column(
                copy.schema.get_field_index(column),
                column,
                pa.array([orphan] * copy.num_rows, pa.int64()),
            )
        pq.write_table(copy, lake / table / f"load-{orphan:010d}.parquet")
    assert current(lake, "events") == before
    assert lake_load(tmp_path, feed, lake)["loads"] == 0
    assert not list(lake.rglob(f"load-{orphan:010d}*.parquet"))
    assert current(lake, "events") == before
    shutil.rmtree(lake)


def test_a_second_feed_is_refused_as_postgres_refuses_it(db_env, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    generate_feed(first, "--days", "2", "--seed", "3")
    generate_feed(second, "--days", "3", "--seed", "4")  # the same day files, other songs
    lake = tmp_path / "lake"
    lake_load(tmp_path, first, lake)
    assert run_loader(db_env, "--data-dir", first).returncode == 0
    before = lake_files(lake)

    into_lake = run_loader(dict(os.environ), "--data-dir", second, "--lake", lake, "--json")
    into_pg = run_loader(db_env, "--data-dir", second, "--json")
    assert (into_lake.returncode, into_pg.returncode) == (2, 2), into_lake.stderr
    assert into_lake.stdout == "" and "Traceback" not in into_lake.stderr
    assert lake_files(lake) == before  # nothing loaded, nothing restamped
    named = OTHER_FEED.search(into_lake.stderr)
    assert named and named.groups() == OTHER_FEED.search(into_pg.stderr).groups()
    assert named.group(2) == str((first / "log_data").resolve())

    # Asked to, both replace the files of the same name, and keep the first
    # feed's others: they are not this feed's, so not "no longer in the feed".
    replaced = lake_load(tmp_path, second, lake, "--replace-other-feed")
    loaded = run_loader(db_env, "--data-dir", second, "--json", "--replace-other-feed")
    assert loaded.returncode == 0, loaded.stderr
    in_pg = json.loads(loaded.stdout)
    compared = ("files_loaded", "files_replaced", "files_unchanged", "files_vanished")
    assert {key: replaced[key] for key in compared} == {key: in_pg[key] for key in compared}
    assert replaced["files_replaced"] > 0 and replaced["files_vanished"] == []
    with connect(db_env) as conn:
        pg_lines = set(conn.execute("select source_file, line_number from raw.events"))
    assert {(r["source_file"], r["line_number"]) for r in current(lake, "events")} == pg_lines


def put_and_load_within_one_second(
    client, bucket_name: str, key: str, first: bytes, second: bytes, load
) -> bool:
    """Put `first`, load it, and put `second` over it, all in one second of the
    store's clock (its listing gives seconds): True if the store kept the same
    last-modified time, so that only the ETag tells the two apart."""
    time.sleep(1 - time.time() % 1 + 0.01)  # at the start of a second
    client.put_object(Bucket=bucket_name, Key=key, Body=first)
    stamp = client.head_object(Bucket=bucket_name, Key=key)["LastModified"]
    load()
    client.put_object(Bucket=bucket_name, Key=key, Body=second)
    return client.head_object(Bucket=bucket_name, Key=key)["LastModified"] == stamp


def event_line(level: str, item: int) -> bytes:
    return json.dumps(
        {
            "page": "Home",
            "userId": "7",
            "sessionId": 3,
            "itemInSession": item,
            "ts": 1541000000000 + item,
            "level": level,
        },
        separators=(",", ":"),
    ).encode()


def test_an_object_rewritten_within_its_second_is_replaced_by_its_etag(
    db_env,
    moto: MotoServer,  # noqa: F811
    bucket: str,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """Same size, same last-modified second, other bytes: the lake sees the new
    ETag and replaces the rows, as PostgreSQL's loader does."""
    for name, value in moto.env(db_env).items():
        monkeypatch.setenv(name, value)  # both loaders run in this process: fast
    client = moto.client()
    url = f"s3://{bucket}/feed"
    lake = tmp_path / "lake"

    def load_both() -> tuple[dict, dict]:
        roots = resolve_roots(url, None, None)
        into_lake = lake_loader.run(source_for(roots), lake, LoadOptions()).as_dict()
        return into_lake, pg_run(roots, LoadOptions()).as_dict()

    client.put_object(Bucket=bucket, Key="feed/log_data/warm-up.json", Body=event_line("free", 0))
    load_both()  # the schema, the lake's folders, the imports: done before the clock runs
    paid = b"\n".join(event_line("paid", item) for item in (1, 2, 3)) + b"\n"
    free = paid.replace(b'"paid"', b'"free"', 1)
    assert len(free) == len(paid)
    for attempt in range(5):  # a load that crosses a second boundary tries again
        key = f"feed/log_data/day-{attempt}.json"
        if put_and_load_within_one_second(client, bucket, key, free, paid, load_both):
            break
    else:
        pytest.fail("five loads in a row took over a second: the machine is too slow")

    into_lake, into_pg = load_both()
    assert (into_lake["files_replaced"], into_pg["files_replaced"]) == (1, 1)
    name = key.removeprefix("feed/")
    levels = sorted(
        json.loads(row["payload"])["level"]
        for row in current(lake, "events")
        if row["source_file"] == name
    )
    assert levels == ["paid", "paid", "paid"]
    with connect(db_env) as conn:
        in_pg = conn.execute(
            "select payload ->> 'level' from raw.events where source_file = %s", [name]
        ).fetchall()
    assert sorted(level for (level,) in in_pg) == levels
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert {
        row["etag"] for row in current(lake, "load_manifest") if row["source_file"] == name
    } == {etag}


def object_reads(server: MotoServer, bucket_name: str, since: int) -> list[str]:
    """The requests for an object (not a listing) logged after the first `since`."""
    return [
        line
        for line in server.requests()[since:]
        if line.startswith("GET ") and f"/{bucket_name}/" in line.split("?")[0]
    ]


def test_an_object_put_again_unchanged_is_restamped_and_not_read_again(
    moto: MotoServer,  # noqa: F811
    bucket: str,  # noqa: F811
    tmp_path,
):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2")
    keys = upload_feed(moto.client(), bucket, feed, "feed")
    env = moto.env(dict(os.environ))
    url, lake = f"s3://{bucket}/feed", tmp_path / "lake"
    first = lake_load(tmp_path, url, lake, env=env)

    day = next(key for key in keys if key.endswith("-events.json"))
    body = moto.client().get_object(Bucket=bucket, Key=day)["Body"].read()
    time.sleep(1.1)  # a new last-modified second, the same bytes (so the same ETag)
    moto.client().put_object(Bucket=bucket, Key=day, Body=body)
    before = len(moto.requests())
    again = lake_load(tmp_path, url, lake, env=env)
    assert (again["files_loaded"], again["files_unchanged"]) == (0, first["files_found"])
    assert len(object_reads(moto, bucket, before)) == 1  # hashed once, found unchanged

    before = len(moto.requests())
    third = lake_load(tmp_path, url, lake, env=env)
    assert (third["files_loaded"], third["loads"]) == (0, 0)
    assert object_reads(moto, bucket, before) == []  # restamped: not read again
    stamped = moto.client().head_object(Bucket=bucket, Key=day)["LastModified"]
    row = next(r for r in current(lake, "load_manifest") if r["source_file"] == day[5:])
    assert row["mtime_ns"] == int(stamped.timestamp()) * 10**9
    assert row["load_id"] < row["recorded_by_load"]  # its rows are still those first landed


def test_the_log_names_the_files_no_longer_in_the_feed(tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2")
    lake = tmp_path / "lake"
    lake_load(tmp_path, feed, lake)
    gone = sorted((feed / "log_data").rglob("*-events.json"))[0]
    name = str(gone.relative_to(feed))
    gone.unlink()

    for args, said in (((), "are no longer in the feed"), (("--prune",), "pruned")):
        result = run_loader(dict(os.environ), "--data-dir", feed, "--lake", lake, "--json", *args)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["files_vanished"] == [name]
        warning = [line for line in result.stderr.splitlines() if said in line]
        assert warning and name in warning[0], result.stderr
    assert name not in {row["source_file"] for row in current(lake, "events")}


def test_an_object_gone_after_listing_is_skipped_and_named_as_on_postgres(
    db_env,
    moto: MotoServer,  # noqa: F811
    bucket: str,  # noqa: F811
    tmp_path,
):
    """An object deleted between listing and GET: the lake leaves it out of its
    load and names it (exit 3, files_unreadable), lands the rest, and the next
    run loads it; PostgreSQL's loader, with the same fault, lands the same rows."""
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "3", "--songs", "12")
    upload_feed(moto.client(), bucket, feed, "feed")
    day = "log_data/2018/11/2018-11-02-events.json"
    gone = rf"^GET /{bucket}/feed/{re.escape(day)}(\?|$)"
    url, lake = f"s3://{bucket}/feed", tmp_path / "lake"
    summaries = []
    with FaultProxy(moto.endpoint, moto.client()) as proxy:
        for env, args in ((dict(os.environ), ("--lake", lake)), (db_env, ())):
            proxy.rules = [Rule(gone, delete_first=True, times=1)]
            result = run_loader(proxy.env(moto.env(env)), "--data-dir", url, "--json", *args)
            assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
            assert f"skipped {day}: gone" in result.stderr  # named in the log
            summaries.append(json.loads(result.stdout))
            moto.client().put_object(
                Bucket=bucket, Key=f"feed/{day}", Body=(feed / day).read_bytes()
            )
    into_lake, into_pg = summaries
    assert [entry["file"] for entry in into_lake["files_unreadable"]] == [day]
    compared = ("files_found", "files_loaded", "event_rows", "song_rows", "rejects")
    assert {key: into_lake[key] for key in compared} == {key: into_pg[key] for key in compared}
    assert into_lake["files_loaded"] == into_lake["files_found"] - 1
    with connect(db_env) as conn:
        pg_lines = set(conn.execute("select source_file, line_number from raw.events"))
    assert {(r["source_file"], r["line_number"]) for r in current(lake, "events")} == pg_lines
    assert day not in {row["source_file"] for row in current(lake, "load_manifest")}

    back = lake_load(tmp_path, url, lake, env=moto.env(dict(os.environ)))
    assert (back["files_loaded"], back["files_unreadable"]) == (1, [])
    assert day in {row["source_file"] for row in current(lake, "events")}
