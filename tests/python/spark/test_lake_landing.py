"""load_raw.py --lake: the landing tables as Iceberg tables keep the loader's contract.

Read back with pyiceberg the way Spark's views read them (lake_reader.current,
macros/landing.sql): committed loads only, each file's rows from the load of
its current manifest row. Each test has a catalog database of its own
(SPARKIFY_LAKE_CATALOG_DB) on the test server. Marked `spark` (pyiceberg comes
with requirements-spark.txt): run by make test-spark; no Spark is started.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fault_proxy import FaultProxy, Rule
from helpers import (
    admin_conninfo,
    connect,
    generate_feed,
    kill_group,
    run_loader,
    start_loader,
    throwaway_database,
    wait_until,
)
from lake_reader import current, lake_rows
from s3_server import MotoServer, upload_feed
from sparkify.loader import lake as lake_loader
from sparkify.loader import lake_catalog
from sparkify.loader.options import LoadOptions
from sparkify.loader.run import resolve_roots, source_for
from sparkify.loader.run import run as pg_run

pytestmark = pytest.mark.spark


def catalog_of_its_own(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    for env in throwaway_database(server_env):
        yield {**server_env, lake_catalog.CATALOG_DATABASE_VARIABLE: env["PGDATABASE"]}


@pytest.fixture
def lake_env(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The test server's environment with a lake catalog database of the test's own."""
    yield from catalog_of_its_own(server_env)


@pytest.fixture
def other_lake_env(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A second catalog, for a clean load to compare with."""
    yield from catalog_of_its_own(server_env)


def canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def lake_load(env: dict[str, str], feed: Path | str, lake: Path | str, *args: str) -> dict:
    result = run_loader(env, "--data-dir", feed, "--lake", lake, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lake_files(lake: Path) -> dict[str, bytes]:
    """Every file the lake holds, by path: what a refused run must leave alone."""
    return {
        str(path.relative_to(lake)): path.read_bytes()
        for path in sorted(lake.rglob("*"))
        if path.is_file()
    }


def landing(env: dict[str, str]) -> dict[str, list[tuple]]:
    """The landing tables as the Spark staging reads them, without what differs
    between two loads of the same feed (when it landed, which load ids)."""
    kept = {
        "events": ("source_file", "line_number", "payload"),
        "songs": ("source_file", "line_number", "payload"),
        "rejects": ("source_file", "line_number", "line", "reason", "detail"),
        "load_manifest": (
            "source_file",
            "source_kind",
            "checksum",
            "size_bytes",
            "row_count",
            "reject_count",
            "feed_root",
        ),
        "loads": (
            "source_kind",
            "file_count",
            "row_count",
            "reject_count",
            "replaced_file_count",
        ),
    }
    return {
        table: sorted(tuple(row[column] for column in columns) for row in current(env, table))
        for table, columns in kept.items()
    }


def stray_rows(env: dict[str, str]) -> dict[str, int]:
    """Rows of loads that are not in loads, by table: none after a run ends."""
    committed = {row["load_id"] for row in lake_rows(env, "loads")}
    found = {}
    for table in ("events", "songs", "rejects", "load_manifest"):
        column = "recorded_by_load" if table == "load_manifest" else "load_id"
        found[table] = sum(row[column] not in committed for row in lake_rows(env, table))
    return found


# What a refusal of another feed names: the first file and the feed it came from.
OTHER_FEED = re.compile(r"files loaded from another feed \(e\.g\. (\S+) from (\S+)\)")


def test_lake_lands_the_same_rows_and_rejects_as_postgres(db_env, lake_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--faults", "--days", "6", "--seed", "7")
    lake = tmp_path / "lake"
    stats = lake_load(lake_env, feed, lake)
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
            for r in current(lake_env, kind)
        }
        for kind in ("events", "songs")
    }
    # jsonb keeps its own key order: compare parsed objects.
    assert as_rows["events"] == pg_events
    assert as_rows["songs"] == pg_songs
    lake_rejects = {
        (r["source_file"], r["line_number"], r["line"], r["reason"])
        for r in current(lake_env, "rejects")
    }
    assert lake_rejects == pg_rejects and pg_rejects  # the faults make rejects
    assert stats["rejects"] == len(pg_rejects)
    # The files are where docs/loader.md says, and the catalog names the lake.
    assert sorted(path.name for path in (lake / lake_catalog.NAMESPACE).iterdir()) == sorted(
        lake_catalog.TABLES
    )
    assert list((lake / lake_catalog.NAMESPACE / "events" / "data").glob("*.parquet"))


def test_rerun_loads_nothing_and_a_changed_file_replaces_its_rows(lake_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "3")
    lake = tmp_path / "lake"
    first = lake_load(lake_env, feed, lake)
    assert first["loads"] >= 2 and first["event_rows"] > 0
    assert lake_load(lake_env, feed, lake)["loads"] == 0

    day = sorted((feed / "log_data").rglob("*-events.json"))[0]
    name = str(day.relative_to(feed))
    lines = day.read_bytes().splitlines()[:5]
    day.write_bytes(b"\n".join(lines) + b"\n")
    again = lake_load(lake_env, feed, lake)
    assert (again["loads"], again["files_replaced"], again["event_rows"]) == (1, 1, 5)
    rows = [row for row in current(lake_env, "events") if row["source_file"] == name]
    assert sorted(row["line_number"] for row in rows) == [1, 2, 3, 4, 5]
    assert {row["load_id"] for row in rows} == {again["last_load_id"]}
    loads = {row["load_id"]: row for row in lake_rows(lake_env, "loads")}
    assert loads[again["last_load_id"]]["replaced_file_count"] == 1


class CommitBlocker:
    """Holds the catalog row of one landing table locked (select ... for update),
    so that a loader's commit of that table waits: it has committed the tables
    before it (lines, rejects, manifest, loads: that order), not this one."""

    def __init__(self, env: dict[str, str], table: str):
        params = lake_catalog.connection_params(env)
        self.conn = psycopg.connect(
            admin_conninfo(env).replace("dbname=postgres", f"dbname={params['dbname']}")
        )
        self.conn.execute(
            "select 1 from iceberg_tables where table_name = %s for update", [table]
        ).fetchone()

    def waiting(self) -> bool:
        """True once a session waits for this lock: the loader, at that commit."""
        pid = self.conn.info.backend_pid
        with psycopg.connect(self.conn.info.dsn, autocommit=True) as other:
            found = other.execute(
                "select 1 from pg_stat_activity where %s = any(pg_blocking_pids(pid))", [pid]
            ).fetchone()
        return found is not None

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


@pytest.mark.parametrize("blocked", ["events", "load_manifest", "loads"])
def test_a_load_killed_between_its_commits_is_invisible_and_removed_by_the_next_run(
    lake_env, other_lake_env, tmp_path, blocked
):
    """SIGKILL while a load waits to commit `blocked`: for `events` nothing is
    committed (its data files are written, in no snapshot); for the others its
    lines (and for `loads` its manifest rows) are committed, its loads row is
    not. Readers see the lake as before; the next plain run deletes the stray
    rows and ends equal to a clean load of the same feed."""
    feed = tmp_path / "feed"
    generate_feed(feed, "--faults", "--days", "3", "--seed", "5")
    lake = tmp_path / "lake"
    lake_load(lake_env, feed, lake)
    before = landing(lake_env)
    # A changed file: the killed load replaces its rows.
    day = sorted((feed / "log_data").rglob("*-events.json"))[0]
    day.write_bytes(day.read_bytes() + day.read_bytes().splitlines(keepends=True)[0])

    blocker = CommitBlocker(lake_env, blocked)
    try:
        killed = start_loader(lake_env, tmp_path / "killed.err", "--data-dir", feed, "--lake", lake)
        wait_until(blocker.waiting, f"the loader to wait at its commit of {blocked}")
        kill_group(killed)
    finally:
        blocker.release()
    assert landing(lake_env) == before  # nothing of the killed load is visible
    # ... though from the manifest's commit on, its lines were committed
    assert (stray_rows(lake_env)["events"] > 0) == (blocked != "events")

    again = lake_load(lake_env, feed, lake)
    assert (again["loads"], again["files_replaced"]) == (1, 1)
    assert set(stray_rows(lake_env).values()) == {0}
    lake_load(other_lake_env, feed, tmp_path / "clean")
    got, clean = landing(lake_env), landing(other_lake_env)
    for table in ("events", "songs", "rejects", "load_manifest"):
        assert got[table] == clean[table], table


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
    lake_env,
    moto: MotoServer,
    bucket: str,
    tmp_path,
    monkeypatch,
):
    """Same size, same last-modified second, other bytes: the lake sees the new
    ETag and replaces the rows, as PostgreSQL's loader does."""
    env = moto.env({**db_env, **lake_env, "PGDATABASE": db_env["PGDATABASE"]})
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # both loaders run in this process: fast
    client = moto.client()
    url = f"s3://{bucket}/feed"
    lake = tmp_path / "lake"

    def load_lake() -> dict:
        roots = resolve_roots(url, None, None)
        return lake_loader.run(source_for(roots), lake, LoadOptions()).as_dict()

    def load_pg() -> dict:
        return pg_run(resolve_roots(url, None, None), LoadOptions()).as_dict()

    client.put_object(Bucket=bucket, Key="feed/log_data/warm-up.json", Body=event_line("free", 0))
    load_lake(), load_pg()  # the schema, the lake's tables, the imports: before the clock runs
    paid = b"\n".join(event_line("paid", item) for item in (1, 2, 3)) + b"\n"
    free = paid.replace(b'"paid"', b'"free"', 1)
    assert len(free) == len(paid)
    # Each loader on a key of its own, so that one load fits in the second.
    names = {}
    for loader, load in (("lake", load_lake), ("pg", load_pg)):
        for attempt in range(5):  # a load that crosses a second boundary tries again
            key = f"feed/log_data/day-{loader}-{attempt}.json"
            if put_and_load_within_one_second(client, bucket, key, free, paid, load):
                names[loader] = key.removeprefix("feed/")
                break
        else:
            pytest.fail("five loads in a row took over a second: the machine is too slow")

    into_lake, into_pg = load_lake(), load_pg()
    assert (into_lake["files_replaced"], into_pg["files_replaced"]) == (1, 1)
    with connect(db_env) as conn:
        in_pg: dict[str, list[str]] = dict(
            conn.execute(
                "select source_file, array_agg(payload ->> 'level') from raw.events group by 1"
            )
        )
    for name in names.values():
        levels = sorted(
            json.loads(row["payload"])["level"]
            for row in current(env, "events")
            if row["source_file"] == name
        )
        assert levels == ["paid", "paid", "paid"] == sorted(in_pg[name])
    name = names["lake"]
    etag = client.head_object(Bucket=bucket, Key=f"feed/{name}")["ETag"].strip('"')
    assert {row["etag"] for row in current(env, "load_manifest") if row["source_file"] == name} == {
        etag
    }


def object_reads(server: MotoServer, bucket_name: str, since: int) -> list[str]:
    """The requests for an object (not a listing) logged after the first `since`."""
    return [
        line
        for line in server.requests()[since:]
        if line.startswith("GET ") and f"/{bucket_name}/" in line.split("?")[0]
    ]


def test_an_object_put_again_unchanged_is_restamped_and_not_read_again(
    lake_env,
    moto: MotoServer,
    bucket: str,
    tmp_path,
):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2")
    keys = upload_feed(moto.client(), bucket, feed, "feed")
    env = moto.env(lake_env)
    url, lake = f"s3://{bucket}/feed", tmp_path / "lake"
    first = lake_load(env, url, lake)

    day = next(key for key in keys if key.endswith("-events.json"))
    body = moto.client().get_object(Bucket=bucket, Key=day)["Body"].read()
    time.sleep(1.1)  # a new last-modified second, the same bytes (so the same ETag)
    moto.client().put_object(Bucket=bucket, Key=day, Body=body)
    before = len(moto.requests())
    again = lake_load(env, url, lake)
    assert (again["files_loaded"], again["files_unchanged"]) == (0, first["files_found"])
    assert len(object_reads(moto, bucket, before)) == 1  # hashed once, found unchanged

    before = len(moto.requests())
    third = lake_load(env, url, lake)
    assert (third["files_loaded"], third["loads"]) == (0, 0)
    assert object_reads(moto, bucket, before) == []  # restamped: not read again
    stamped = moto.client().head_object(Bucket=bucket, Key=day)["LastModified"]
    row = next(r for r in current(env, "load_manifest") if r["source_file"] == day[5:])
    assert row["mtime_ns"] == int(stamped.timestamp()) * 10**9
    assert row["load_id"] < row["recorded_by_load"]  # its rows are still those first landed


def test_the_log_names_the_files_no_longer_in_the_feed(lake_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2")
    lake = tmp_path / "lake"
    lake_load(lake_env, feed, lake)
    gone = sorted((feed / "log_data").rglob("*-events.json"))[0]
    name = str(gone.relative_to(feed))
    gone.unlink()

    for args, said in (((), "are no longer in the feed"), (("--prune",), "pruned")):
        result = run_loader(lake_env, "--data-dir", feed, "--lake", lake, "--json", *args)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["files_vanished"] == [name]
        warning = [line for line in result.stderr.splitlines() if said in line]
        assert warning and name in warning[0], result.stderr
    assert name not in {row["source_file"] for row in current(lake_env, "events")}


def test_an_object_gone_after_listing_is_skipped_and_named_as_on_postgres(
    db_env,
    lake_env,
    moto: MotoServer,
    bucket: str,
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
        for env, args in ((lake_env, ("--lake", lake)), (db_env, ())):
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
    lines = {(r["source_file"], r["line_number"]) for r in current(lake_env, "events")}
    assert lines == pg_lines
    assert day not in {row["source_file"] for row in current(lake_env, "load_manifest")}

    back = lake_load(moto.env(lake_env), url, lake)
    assert (back["files_loaded"], back["files_unreadable"]) == (1, [])
    assert day in {row["source_file"] for row in current(lake_env, "events")}


def test_a_lake_in_object_storage_lands_what_a_folder_lands(
    lake_env,
    other_lake_env,
    moto: MotoServer,
    bucket: str,
    tmp_path,
):
    feed = tmp_path / "feed"
    generate_feed(feed, "--faults", "--days", "3", "--seed", "11")
    env = moto.env(lake_env)
    lake = f"s3://{bucket}/lake"
    first = lake_load(env, feed, lake)
    assert lake_load(env, feed, lake)["loads"] == 0
    lake_load(other_lake_env, feed, tmp_path / "lake")
    assert landing(env) == landing(other_lake_env)
    assert first["rejects"] > 0
    keys = [
        item["Key"]
        for page in moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]
    assert any(key.startswith("lake/raw_lake/events/data/") for key in keys)


def test_the_lake_store_failing_mid_load_is_said_and_the_next_run_finishes(
    lake_env,
    other_lake_env,
    moto: MotoServer,
    bucket: str,
    tmp_path,
):
    """The store answers every write of the loads table's data with 503 (its
    lines and manifest rows already committed): exit 4, one line; nothing of
    the load is visible, and the next run, with the store back, equals a
    clean load."""
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2", "--seed", "13")
    lake = f"s3://{bucket}/lake"
    with FaultProxy(moto.endpoint, moto.client()) as proxy:
        proxy.rules = [
            Rule(
                rf"^(PUT|POST) /{bucket}/lake/raw_lake/loads/data/", status=503, s3_code="SlowDown"
            )
        ]
        env = proxy.env(moto.env(lake_env))
        failed = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert failed.returncode == 4, failed.stderr
    said = [line for line in failed.stderr.splitlines() if "could not be read or written" in line]
    assert said and "re-run" in said[0] and "Traceback" not in failed.stderr
    env = moto.env(lake_env)
    assert current(env, "loads") == [] and current(env, "events") == []
    assert stray_rows(env)["events"] > 0

    again = lake_load(env, feed, lake)
    assert again["files_loaded"] == again["files_found"]
    assert set(stray_rows(env).values()) == {0}
    lake_load(other_lake_env, feed, tmp_path / "clean")
    assert landing(env) == landing(other_lake_env)


def test_two_loaders_at_once_take_turns(lake_env, other_lake_env, tmp_path):
    """The first holds the lake (waiting at its last commit); the second says it
    waits, then finds everything loaded; the lake equals one clean load."""
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "2", "--seed", "17")
    lake = tmp_path / "lake"
    (tmp_path / "empty").mkdir()  # a run on nothing: the lake's tables, empty
    assert run_loader(lake_env, "--log-data", tmp_path / "empty", "--lake", lake).returncode == 0
    blocker = CommitBlocker(lake_env, "loads")
    try:
        first = start_loader(
            lake_env, tmp_path / "first.err", "--data-dir", feed, "--lake", lake, "--json"
        )
        wait_until(blocker.waiting, "the first loader to wait at its commit")
        second = start_loader(
            lake_env, tmp_path / "second.err", "--data-dir", feed, "--lake", lake, "--json"
        )
        wait_until(
            lambda: "waiting for it to finish" in (tmp_path / "second.err").read_text(),
            "the second loader to say it waits",
        )
    finally:
        blocker.release()
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), (tmp_path / "second.err").read_text()
    firsts, seconds = (json.loads(output) for output in outputs)
    assert seconds["loads"] == 0 and seconds["files_unchanged"] == firsts["files_loaded"]
    waited = (tmp_path / "second.err").read_text()
    assert "another loader (load_raw --lake (pid" in waited
    lake_load(other_lake_env, feed, tmp_path / "clean")
    assert landing(lake_env) == landing(other_lake_env)


def test_one_catalog_keeps_one_lake(lake_env, tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "1")
    lake_load(lake_env, feed, tmp_path / "lake")
    other = run_loader(lake_env, "--data-dir", feed, "--lake", tmp_path / "other", "--json")
    assert other.returncode == 2 and other.stdout == "", other.stderr
    said = other.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "lake") in said and lake_catalog.CATALOG_DATABASE_VARIABLE in said
    assert not (tmp_path / "other").exists()


def test_an_unreachable_catalog_is_said_in_one_line(tmp_path):
    feed = tmp_path / "feed"
    generate_feed(feed, "--days", "1")
    env = {**os.environ, "PGHOST": str(tmp_path / "no-server"), "PGPORT": "5999"}
    result = run_loader(env, "--data-dir", feed, "--lake", tmp_path / "lake", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    said = result.stderr.strip().splitlines()[-1]
    assert "lake catalog" in said and "PGHOST" in said
