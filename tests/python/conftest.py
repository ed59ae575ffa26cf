"""Shared fixtures: a real PostgreSQL and a fresh database per test (helpers.py: the rest).

The server is the one PGHOST names, or else the embedded one (started on demand),
exactly as the make targets choose. Each test that needs a database gets its own,
created empty and dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import admin_conninfo, build, generate_feed, run_loader, throwaway_database

if TYPE_CHECKING:  # pyarrow and PyHive: requirements-spark.txt, not make test-fast's
    from s3_server import MotoServer  # a plugin (below): imported by pytest, rewritten
    from spark_warehouse import SparkCluster

# The analysts' side (docs site, report) shares one built warehouse per session.
pytest_plugins = ["analyst_site", "database_roles", "s3_server"]

# The fixtures that stand up a real server: PostgreSQL, Chromium, the S3 server.
SERVER_FIXTURES = frozenset({"server_env", "chromium_browser", "moto", "moto_with_auth"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects: make test-fast is -m "not slow"
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a server is slow, directly or through another fixture: a
    safety net under each module's `pytestmark = pytest.mark.slow`, so that the fast
    tier never waits for a server a test forgot to declare."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def server_env() -> dict[str, str]:
    """The environment that points at the test server (PGDATABASE not yet chosen)."""
    if os.environ.get("PGHOST"):
        return dict(os.environ)
    from sparkify import embedded_pg

    return {**os.environ, **embedded_pg.start()}


@pytest.fixture
def embedded_env(server_env: dict[str, str]) -> dict[str, str]:
    """The environment of a make target on this checkout's embedded server: no PG*
    variables at all, as a user runs `make`. Skips when the tests run on a PGHOST server."""
    from sparkify import embedded_pg

    pgdata = embedded_pg.default_pgdata(embedded_pg.bin_dir_from_env())
    socket_dir = embedded_pg.running_socket_dir(pgdata)
    if socket_dir is None or str(socket_dir) != server_env["PGHOST"]:
        pytest.skip("the tests run against a PGHOST server, not this checkout's embedded one")
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


@pytest.fixture
def db_env(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """An environment whose PGDATABASE is a new, empty database, dropped after the test."""
    yield from throwaway_database(server_env)


@pytest.fixture
def other_db_env(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A second empty database on the same server, for side-by-side loads."""
    yield from throwaway_database(server_env)


@dataclass(frozen=True)
class BuiltWarehouse:
    env: dict[str, str]  # PG* variables of the built database
    feed: Path  # the generated feed it was loaded from (with its _truth/)


# The feed shape of the tests that only read the marts of a small feed (warehouse/test_marts.py):
# 150 songs for every kind of near miss, 20 days for level changes.
SMALL_MONTH = ("--days", "20", "--users", "40", "--songs", "150", "--events-per-day", "200")


@pytest.fixture(scope="session")
def small_month(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltWarehouse]:
    """A database holding SMALL_MONTH, loaded and built once per session. Read it only."""
    work = tmp_path_factory.mktemp("small_month")
    for env in throwaway_database(server_env):
        generate_feed(work / "feed", *SMALL_MONTH, "--seed", "7")
        loaded = run_loader(env, "--data-dir", work / "feed")
        assert loaded.returncode == 0, loaded.stderr
        build(env, work)
        yield BuiltWarehouse(env=env, feed=work / "feed")


@pytest.fixture(scope="session")
def spark_cluster(
    server_env: dict[str, str], moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SparkCluster]:
    """The project's Spark cluster (src/sparkify/spark_cluster.py), started once per test
    session for the tests that build on Spark, in a SPARK_DIR, on free ports and
    with a metastore database and an Iceberg catalog database of its own; stopped,
    and its databases dropped, at the end. A test that builds calls its reset() first.
    Started with the session's S3 server in its AWS variables, as a user starts it
    for a lake in object storage: a lake may be a folder or s3://."""
    import psycopg
    from psycopg import sql

    from spark_warehouse import SparkCluster, cluster_cli, cluster_env

    fetched = cluster_cli(dict(os.environ), "jars")
    assert fetched.returncode == 0, fetched.stderr
    spark_dir = tmp_path_factory.mktemp("spark_cluster")
    metastore_db = f"sparkify_metastore_pytest_{uuid.uuid4().hex[:12]}"
    env = moto.env(cluster_env(server_env, spark_dir, metastore_db))
    # Both workers' cores to the Thrift server: no other application shares this one.
    env["SPARKIFY_SPARK_THRIFT_CORES"] = "2"
    try:
        started = cluster_cli(env, "start")
        assert started.returncode == 0, started.stderr
        yield SparkCluster(env, spark_dir, metastore_db)
    finally:
        cluster_cli(env, "stop")
        with psycopg.connect(admin_conninfo(server_env), autocommit=True) as conn:
            for database in (metastore_db, SparkCluster(env, spark_dir, metastore_db).catalog_db):
                conn.execute(
                    sql.SQL("drop database if exists {} with (force)").format(
                        sql.Identifier(database)
                    )
                )
