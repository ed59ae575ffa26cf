"""The warehouse on Apache Spark (`make test-spark`, docs/spark.md): parity with PostgreSQL.

One generated feed with faults goes, through `load_raw.py --lake`, into a lake
folder and `dbt --target spark` (the profile's thrift method, on the project's
Spark cluster: a master, two workers and a Thrift server, started once for the
test session by conftest.py), and, through the plain loader, into PostgreSQL.
The feed's last day arrives as a second load, so the Spark build that takes
it is incremental (the files models append it), and then a corrected first
day, which they hold already (so they rewrite). Then:
- the Spark build runs every model, data test and unit test, and passes;
- that incremental build equals a --full-refresh build on Spark, table by table;
- every mart and report table equals PostgreSQL's, row for row, after
  normalising types (exact numbers, timestamps as naive UTC), and the lake's
  rejects equal raw.rejects (file, line, reason);
- the feed holds the lines the engines used to read apart (HARD_LINES): a
  repeated key, and lines nested 400, 1,000 and 100,000 deep;
- the public course sample gives the course figures on Spark, as on PostgreSQL.

These tests need requirements-spark.txt, Java 17 and the cluster's jars
(`make spark-deps spark-jars`); they are marked `spark` and run once, by
`make test-spark`, not in every PostgreSQL pass. Each test that builds empties
the cluster's catalog first: the catalog outlives each dbt run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from course_oracle import ORACLE_MARTS, needs_udacity, oracle, read_feed
from feed_lines import summary_of
from helpers import (
    UDACITY_SAMPLE,
    connect,
    dbt_results,
    generate_feed,
    run_dbt,
    run_loader,
    throwaway_database,
)
from interruptions import start_dbt
from lake_reader import current
from spark_warehouse import (
    COMPARED_SCHEMAS,
    SparkCluster,
    differences,
    pg_tables,
    spark_env,
    spark_tables,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# Every schema dbt builds tables in on Spark: the incremental build is
# compared with the full refresh on all of them.
BUILT_SCHEMAS = ("staging", "analytics", "audit", "reports")


# Lines the two engines once read apart, each made from one of the feed's plays
# (under a new itemInSession, so it is an event of its own): how deep its extra
# field nests (None: no extra field), and whether its page key comes twice,
# first "Home", last "NextSong" (jsonb keeps the last value).
HARD_LINES = {
    "repeated_page_key": (None, True),
    "nested_400_deep": (400, False),  # lands, and plays, on both
    "nested_1000_deep": (1000, False),  # deeper than the loader takes: too_deep
    "nested_100000_deep": (100_000, False),
}


def hard_line(play: dict, item: int, depth: int | None, repeated_page: bool) -> bytes:
    event = {**play, "itemInSession": item}
    if depth is not None:
        event["extra"] = "__nested__"
    text = json.dumps(event, separators=(",", ":"))
    if depth is not None:  # the extra field's value nests `depth` arrays deep
        text = text.replace('"__nested__"', "[" * depth + "0" + "]" * depth)
    if repeated_page:
        rest = json.dumps({k: v for k, v in event.items() if k != "page"}, separators=(",", ":"))
        text = '{"page":"Home",' + rest[1:-1] + ',"page":"NextSong"}'
    return text.encode()


def is_clean_play(line: bytes) -> bool:
    """A line the feed's faults left alone: a whole play with its keys."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(event, dict)
        and event.get("page") == "NextSong"
        and isinstance(event.get("ts"), int)
        and isinstance(event.get("sessionId"), int)
        and isinstance(event.get("song"), str)
        and bool(event.get("userId"))
    )


def add_hard_lines(days: list[Path], feed: Path) -> dict[str, tuple[str, int]]:
    """Append HARD_LINES to the first of these day files whose last line is
    whole (the generator ends a file without a line break): name ->
    (source_file, line_number)."""
    day = next(day for day in days if day.read_bytes().rstrip(b"\n").endswith(b"}"))
    content = day.read_bytes().rstrip(b"\n")
    play = json.loads(next(line for line in content.split(b"\n") if is_clean_play(line)))
    added = {}
    lines = [content]
    for offset, (name, (depth, repeated)) in enumerate(HARD_LINES.items(), start=1):
        lines.append(hard_line(play, 10_000 * offset, depth, repeated))
        added[name] = (str(day.relative_to(feed)), content.count(b"\n") + 1 + offset)
    day.write_bytes(b"\n".join(lines) + b"\n")
    return added


def spark_dbt(env: dict[str, str], tmp_path: Path, *args: str) -> str:
    result = run_dbt(env, tmp_path, *args, "--target", "spark")
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


def snapshot_count(cluster: SparkCluster, table: str) -> int:
    """How many commits an Iceberg table of the cluster's catalog has had."""
    from pyiceberg.catalog.sql import SqlCatalog

    from sparkify.loader import lake_catalog
    from sparkify.loader.lake_store import sqlalchemy_url

    catalog = SqlCatalog(lake_catalog.CATALOG_NAME, uri=sqlalchemy_url(cluster.env))
    try:
        return len(catalog.load_table(tuple(table.split("."))).snapshots())
    finally:
        catalog.close()


def build_killed_after_write(
    env: dict[str, str], tmp_path: Path, cluster: SparkCluster, table: str
) -> str:
    """Start `dbt run` on Spark and SIGKILL it as soon as `table`'s write (its
    merge) has committed, before its claim is recorded: when dbt has sent the
    statement after the merge (the uncache of its rows, which a model that reads
    its own table has cached; the claim comes after it). Killing it while the
    merge runs would not do: the Thrift server cancels a dead client's
    statements. Returns what dbt had logged."""
    commits = snapshot_count(cluster, table)
    logs = tmp_path / "killed-dbt-logs"
    process = start_dbt(env, tmp_path, "run", "--target", "spark", log_path=logs)
    write = f"merge into {table} as built"
    after_write = f"uncache table if exists {table.split('.')[-1]}__rewrite"
    try:
        deadline = time.monotonic() + 1200
        while True:
            logged = (logs / "dbt.log").read_text(errors="replace") if logs.exists() else ""
            if write in logged and after_write in logged[logged.index(write) :]:
                break
            assert process.poll() is None, "dbt ended before the write"
            assert time.monotonic() < deadline, "dbt never reached the write"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert snapshot_count(cluster, table) == commits + 1, f"{table}'s write did not commit"
    return (logs / "dbt.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def parity(
    tmp_path_factory: pytest.TempPathFactory,
    server_env: dict[str, str],
    spark_cluster: SparkCluster,
) -> Iterator[dict]:
    """Build the same feed on both engines; the results, for the tests below."""
    tmp = tmp_path_factory.mktemp("spark")
    feed = tmp / "feed"
    generate_feed(feed, "--faults", "--days", "8", "--seed", "15")
    days = sorted((feed / "log_data").rglob("*-events.json"))
    # Not the first day (corrected below: its last line goes) nor the last.
    hard_lines = add_hard_lines(days[1:-1], feed)
    last_day = days[-1]
    held_back = tmp / last_day.name
    shutil.move(last_day, held_back)

    lake = tmp / "lake"
    spark_cluster.reset()
    env = spark_env(server_env, spark_cluster, lake)
    first = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert first.returncode == 0, first.stderr
    spark_dbt(env, tmp, "build")
    results: dict = {"build": dbt_results(tmp), "hard_lines": hard_lines}

    # A new day: the files models append it.
    shutil.move(held_back, last_day)
    second = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert second.returncode == 0, second.stderr
    assert summary_of(second)["loads"] == 1, second.stdout
    # A build killed after users_history's write and before its claim: the
    # next plain build claims the same loads again and rebuilds their days from
    # a table that already holds them (users_history reads its own rows), and
    # must end as a full refresh.
    results["killed_log"] = build_killed_after_write(
        env, tmp, spark_cluster, "analytics.users_history"
    )
    spark_dbt(env, tmp, "run")
    results["after_kill"] = spark_tables(spark_cluster, BUILT_SCHEMAS)
    spark_dbt(env, tmp, "run", "--full-refresh")
    results["after_kill_full_refresh"] = spark_tables(spark_cluster, BUILT_SCHEMAS)
    # A corrected day (its last line gone): a file they hold, so they rewrite.
    corrected = days[0]
    lines = corrected.read_bytes().splitlines(keepends=True)
    corrected.write_bytes(b"".join(lines[:-1]))
    third = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert third.returncode == 0, third.stderr
    assert summary_of(third)["files_replaced"] == 1, third.stdout
    spark_dbt(env, tmp, "run")
    results["incremental"] = spark_tables(spark_cluster, BUILT_SCHEMAS)
    spark_dbt(env, tmp, "run", "--full-refresh")
    results["full_refresh"] = spark_tables(spark_cluster, BUILT_SCHEMAS)
    results["lake_rejects"] = sorted(
        (row["source_file"], row["line_number"], row["reason"]) for row in current(env, "rejects")
    )

    for pg_env in throwaway_database(server_env):
        loaded = run_loader(pg_env, "--data-dir", feed)
        assert loaded.returncode == 0, loaded.stderr
        built = run_dbt(pg_env, tmp, "build")
        assert built.returncode == 0, built.stdout[-4000:]
        with connect(pg_env) as conn:
            results["postgres"] = pg_tables(conn, COMPARED_SCHEMAS)
            results["pg_rejects"] = sorted(
                conn.execute("select source_file, line_number, reason from raw.rejects")
            )
            results["pg_pages"] = dict(
                ((source_file, line), page)
                for source_file, line, page in conn.execute(
                    "select source_file, line_number, page from staging.stg_sparkify__events"
                )
            )
    yield results


OK = {"success", "pass", "warn", "no-op"}  # run_results.json: models, hooks; tests; exposures


def test_spark_build_runs_every_model_test_and_unit_test(parity):
    statuses = {name: result["status"] for name, result in parity["build"].items()}
    assert {name for name, status in statuses.items() if status not in OK} == set(), statuses
    assert any(result["unique_id"].startswith("unit_test.") for result in parity["build"].values())
    # The keys Spark cannot enforce are held by a data test there.
    assert "contract_constraints_hold" in statuses


def test_incremental_spark_build_equals_its_full_refresh(parity):
    assert parity["incremental"], "no table was read from the Spark warehouse"
    assert differences(parity["incremental"], parity["full_refresh"]) == {}


def test_a_spark_build_killed_between_its_write_and_its_claim_is_caught_up(parity):
    """The kill came after users_history's merge was sent (and committed) and
    before its claim: the next plain build equals a full refresh, table by table."""
    log = parity["killed_log"]
    write = log.index("merge into analytics.users_history as built")
    assert "insert into audit.consumed_loads select 'users_history'" not in log[write:]
    assert parity["after_kill"]["analytics.users_history"]
    assert differences(parity["after_kill"], parity["after_kill_full_refresh"]) == {}


def test_every_mart_and_report_on_spark_equals_postgres_row_for_row(parity):
    spark = {
        name: rows
        for name, rows in parity["full_refresh"].items()
        if name.split(".")[0] in COMPARED_SCHEMAS
    }
    assert set(spark) == set(parity["postgres"])
    assert all(parity["postgres"][name] for name in ("analytics.songplays", "analytics.users"))
    assert differences(spark, parity["postgres"]) == {}


def test_the_lake_rejects_what_postgres_rejects_for_the_same_reason(parity):
    assert parity["pg_rejects"]  # the feed's faults make rejects
    assert parity["lake_rejects"] == parity["pg_rejects"]


def test_hard_lines_read_the_same_on_both_engines(parity):
    """A repeated key reads its last value, and a line nested 400 deep plays, on
    both engines; deeper lines are too_deep rejects on both."""
    spark_pages = {
        (row["source_file"], row["line_number"]): row["page"]
        for row in map(dict, parity["full_refresh"]["staging.stg_sparkify__events"])
    }
    rejects = {(source_file, line): reason for source_file, line, reason in parity["pg_rejects"]}
    lake_rejects = {(file, line): reason for file, line, reason in parity["lake_rejects"]}
    for name, where in parity["hard_lines"].items():
        depth = HARD_LINES[name][0]
        if depth is not None and depth > 512:
            assert (rejects.get(where), lake_rejects.get(where)) == ("too_deep", "too_deep"), name
            assert where not in spark_pages and where not in parity["pg_pages"], name
        else:
            assert (spark_pages.get(where), parity["pg_pages"].get(where)) == (
                "NextSong",
                "NextSong",
            ), name


@needs_udacity
@pytest.mark.parametrize("store", ["folder", "s3"])
def test_course_sample_gives_the_course_figures_on_spark(
    store, tmp_path, server_env, spark_cluster, moto, bucket
):
    """The sample landed in a lake in a folder, or in object storage (the S3
    server the cluster was started with): the same figures, read by the executors."""
    events, songs = read_feed(UDACITY_SAMPLE)
    expected = oracle(events, songs)
    lake = tmp_path / "lake" if store == "folder" else f"s3://{bucket}/lake"
    spark_cluster.reset()
    env = spark_env(moto.env(server_env), spark_cluster, lake)
    assert run_loader(env, "--data-dir", UDACITY_SAMPLE, "--lake", lake).returncode == 0
    spark_dbt(env, tmp_path, "run", "--select", "+" + " +".join(ORACLE_MARTS))
    tables = spark_tables(spark_cluster, ("analytics",))
    counts = {mart: len(tables[f"analytics.{mart}"]) for mart in ORACLE_MARTS}
    assert counts == {mart: expected[mart] for mart in ORACLE_MARTS}
    # Built by the cluster's executors, in the workers' JVMs: the master gives
    # the Thrift server's application both workers' cores.
    state = spark_cluster.master_json()
    thrift = [app for app in state["activeapps"] if app["name"] == "Sparkify Thrift server"]
    assert len(thrift) == 1 and thrift[0]["cores"] == 2, state["activeapps"]
    assert [worker["coresused"] for worker in state["workers"]] == [1, 1], state["workers"]

    # The catalog names the landing tables: a build told of another lake is
    # refused, as it would build this catalog's landing instead.
    other = run_dbt(
        {**env, "SPARKIFY_LAKE": str(tmp_path / "another-lake")},
        tmp_path,
        *("run", "--target", "spark", "--select", "stg_sparkify__load_manifest"),
    )
    assert other.returncode != 0
    assert f"landing tables are in the lake {lake}:" in other.stdout
    matched = sorted(
        (dict(row)["song_id"], dict(row)["song_match_rule"])
        for row in tables["analytics.songplays"]
        if dict(row)["song_id"] is not None
    )
    assert matched == sorted(expected["matched"].values())
