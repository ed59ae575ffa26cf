"""The warehouse on Apache Spark (`make test-spark`, docs/spark.md): parity with PostgreSQL.

One generated feed with faults goes, through `load_raw.py --lake`, into a lake
folder and `dbt --target spark` (pyspark's own Spark, the session method), and,
through the plain loader, into PostgreSQL. The feed's last day arrives as a
second load, so the Spark build that takes it is incremental (the files models
append it), and then a corrected first day, which they hold already (so they
rewrite). Then:
- the Spark build runs every model, data test and unit test, and passes;
- that incremental build equals a --full-refresh build on Spark, table by table;
- every mart and report table equals PostgreSQL's, row for row, after
  normalising types (exact numbers, timestamps as naive UTC);
- the public course sample gives the course figures on Spark, as on PostgreSQL.

These tests need requirements-spark.txt and Java 17 (`make spark-deps`); they are
marked `spark` and run once, by `make test-spark`, not in every PostgreSQL pass.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import (
    UDACITY_SAMPLE,
    connect,
    generate_feed,
    run_dbt,
    run_loader,
    throwaway_database,
)
from spark_warehouse import (
    COMPARED_SCHEMAS,
    differences,
    pg_tables,
    spark_env,
    spark_tables,
)
from test_warehouse import ORACLE_MARTS, needs_udacity, oracle, read_feed

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# Every schema dbt builds tables in on Spark: the incremental build is
# compared with the full refresh on all of them.
BUILT_SCHEMAS = ("staging", "analytics", "audit", "reports")


def spark_dbt(env: dict[str, str], tmp_path: Path, *args: str) -> str:
    result = run_dbt(env, tmp_path, *args, "--target", "spark")
    assert result.returncode == 0, result.stdout[-6000:]
    return result.stdout


@pytest.fixture(scope="module")
def parity(tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]) -> Iterator[dict]:
    """Build the same feed on both engines; the results, for the tests below."""
    tmp = tmp_path_factory.mktemp("spark")
    feed = tmp / "feed"
    generate_feed(feed, "--faults", "--days", "8", "--seed", "15")
    days = sorted((feed / "log_data").rglob("*-events.json"))
    last_day = days[-1]
    held_back = tmp / last_day.name
    shutil.move(last_day, held_back)

    lake, spark_dir = tmp / "lake", tmp / "spark"
    env = spark_env(server_env, spark_dir, lake)
    first = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert first.returncode == 0, first.stderr
    results: dict = {"build": spark_dbt(env, tmp, "build")}

    # A new day: the files models append it.
    shutil.move(held_back, last_day)
    second = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert second.returncode == 0, second.stderr
    assert '"loads": 1' in second.stdout, second.stdout
    spark_dbt(env, tmp, "run")
    # A corrected day (its last line gone): a file they hold, so they rewrite.
    corrected = days[0]
    lines = corrected.read_bytes().splitlines(keepends=True)
    corrected.write_bytes(b"".join(lines[:-1]))
    third = run_loader(env, "--data-dir", feed, "--lake", lake, "--json")
    assert third.returncode == 0, third.stderr
    assert '"files_replaced": 1' in third.stdout, third.stdout
    spark_dbt(env, tmp, "run")
    results["incremental"] = spark_tables(spark_dir, BUILT_SCHEMAS)
    spark_dbt(env, tmp, "run", "--full-refresh")
    results["full_refresh"] = spark_tables(spark_dir, BUILT_SCHEMAS)

    for pg_env in throwaway_database(server_env):
        loaded = run_loader(pg_env, "--data-dir", feed)
        assert loaded.returncode == 0, loaded.stderr
        built = run_dbt(pg_env, tmp, "build")
        assert built.returncode == 0, built.stdout[-4000:]
        with connect(pg_env) as conn:
            results["postgres"] = pg_tables(conn, COMPARED_SCHEMAS)
    yield results


def test_spark_build_runs_every_model_test_and_unit_test(parity):
    summary = [line for line in parity["build"].splitlines() if "Done. PASS=" in line]
    assert summary, parity["build"][-3000:]
    assert "ERROR=0" in summary[-1] and "SKIP=0" in summary[-1], summary[-1]
    # The keys Spark cannot enforce are held by a data test there.
    assert "contract_constraints_hold" in parity["build"]


def test_incremental_spark_build_equals_its_full_refresh(parity):
    assert parity["incremental"], "no table was read from the Spark warehouse"
    assert differences(parity["incremental"], parity["full_refresh"]) == {}


def test_every_mart_and_report_on_spark_equals_postgres_row_for_row(parity):
    spark = {
        name: rows
        for name, rows in parity["full_refresh"].items()
        if name.split(".")[0] in COMPARED_SCHEMAS
    }
    assert set(spark) == set(parity["postgres"])
    assert all(parity["postgres"][name] for name in ("analytics.songplays", "analytics.users"))
    assert differences(spark, parity["postgres"]) == {}


@needs_udacity
def test_course_sample_gives_the_course_figures_on_spark(tmp_path, server_env):
    events, songs = read_feed(UDACITY_SAMPLE)
    expected = oracle(events, songs)
    lake, spark_dir = tmp_path / "lake", tmp_path / "spark"
    env = spark_env(server_env, spark_dir, lake)
    assert run_loader(env, "--data-dir", UDACITY_SAMPLE, "--lake", lake).returncode == 0
    spark_dbt(env, tmp_path, "run", "--select", "+" + " +".join(ORACLE_MARTS))
    tables = spark_tables(spark_dir, ("analytics",))
    counts = {mart: len(tables[f"analytics.{mart}"]) for mart in ORACLE_MARTS}
    assert counts == {mart: expected[mart] for mart in ORACLE_MARTS}
    matched = sorted(
        (dict(row)["song_id"], dict(row)["song_match_rule"])
        for row in tables["analytics.songplays"]
        if dict(row)["song_id"] is not None
    )
    assert matched == sorted(expected["matched"].values())
