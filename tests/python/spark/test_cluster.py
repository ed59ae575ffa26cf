"""The project's Spark cluster (src/sparkify/spark_cluster.py, docs/spark.md "The cluster").

One cluster, in a SPARK_DIR and on free ports of its own, with its catalog in a
throwaway PostgreSQL database, is started with the CLI as a user would:
- SQL through the Thrift server (PyHive, dbt-spark's thrift client) creates a
  table, and the master's own JSON shows both workers ALIVE and the Thrift
  application holding cores, and the executor ran in a worker's JVM;
- a second Spark process (spark-sql, an application of the same cluster, with
  the cluster's SPARK_CONF_DIR) sees that table through the catalog in
  PostgreSQL, and creates one the Thrift server then sees;
- a second `start` reuses the running daemons; `stop` leaves none of the JVMs
  it recorded (nor their executors) alive.
And a start that cannot work leaves nothing running: a taken port is refused
up front in one line; a Thrift server that dies at start takes down the master
and workers started before it.

Marked `spark` (make test-spark) and slow: the cluster takes about 30 s to start.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from helpers import admin_conninfo
from spark_warehouse import (
    SparkCluster,
    cluster_env,
    command_line,
    is_alive,
    own_processes,
    recorded_pids,
)
from spark_warehouse import cluster_cli as cli
from sparkify import spark_cluster
from sparkify.loader import lake_catalog

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def drop_database(server_env: dict[str, str], name: str) -> None:
    with psycopg.connect(admin_conninfo(server_env), autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


@dataclass
class Cluster(SparkCluster):
    """The module's cluster, and how long its start took."""

    started_in_s: float = 0.0


@pytest.fixture(scope="module")
def cluster(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    fetched = cli(dict(os.environ), "jars")
    assert fetched.returncode == 0, fetched.stderr
    spark_dir = tmp_path_factory.mktemp("cluster")
    metastore_db = f"sparkify_metastore_pytest_{uuid.uuid4().hex[:12]}"
    env = cluster_env(server_env, spark_dir, metastore_db)
    began = time.monotonic()
    started = cli(env, "start")
    try:
        assert started.returncode == 0, started.stderr
        yield Cluster(env, spark_dir, metastore_db, time.monotonic() - began)
    finally:
        cli(env, "stop")
        drop_database(server_env, metastore_db)
        drop_database(server_env, lake_catalog.catalog_database(env))


def test_sql_runs_on_the_workers_through_the_thrift_server(cluster: Cluster) -> None:
    status = cli(cluster.env, "status")
    assert status.stdout.startswith("running: "), status.stdout + status.stderr
    rows = cluster.query(
        "create database if not exists probe",
        "create table probe.plays (id int) using iceberg",
        "insert into probe.plays values (1), (2), (3)",
        "select count(*) from probe.plays",
    )
    assert rows == [(3,)]

    # The master's own view: two workers alive, the Thrift application holding
    # cores on them (not a local[*] driver doing the work itself).
    state = cluster.master_json()
    assert state["aliveworkers"] == 2, state["workers"]
    assert [worker["state"] for worker in state["workers"]] == ["ALIVE", "ALIVE"]
    thrift = [app for app in state["activeapps"] if app["name"] == "Sparkify Thrift server"]
    assert len(thrift) == 1, state["activeapps"]
    assert thrift[0]["cores"] >= 1
    assert sum(worker["coresused"] for worker in state["workers"]) == thrift[0]["cores"]

    # Its executor is a JVM started by a worker (the worker's child), and it
    # wrote its log in that worker's work dir.
    pids = recorded_pids(cluster.spark_dir)
    worker_pids = {pids["worker-1"], pids["worker-2"]}
    executors = [
        child
        for pid in worker_pids
        for child in psutil.Process(pid).children(recursive=True)
        if "CoarseGrainedExecutorBackend" in command_line(child)
    ]
    assert executors, "no executor JVM under either worker"
    logs = list(
        (cluster.spark_dir / "cluster" / "work").glob(f"worker-*/{thrift[0]['id']}/*/stderr")
    )
    assert logs, "no executor log in a worker's work dir"


def test_a_second_spark_process_shares_the_catalog_in_postgresql(cluster: Cluster) -> None:
    cluster.query(
        "create database if not exists shared",
        "create table if not exists shared.songs (title string) using iceberg",
        "insert into shared.songs values ('one'), ('two')",
    )
    # spark-sql: its own driver JVM and metastore client, a second application
    # of the cluster (the Thrift server leaves it a core), with the cluster's
    # SPARK_CONF_DIR: the same catalog and warehouse.
    exported = cli(cluster.env, "env").stdout
    variables = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exported.splitlines()
    )
    assert variables["SPARK_CONF_DIR"] == str(cluster.spark_dir / "cluster" / "conf"), exported
    env = {
        **cluster.env,
        "SPARK_CONF_DIR": variables["SPARK_CONF_DIR"],
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    done = subprocess.run(
        [
            str(spark_cluster.pyspark_home() / "bin" / "spark-sql"),
            *["--master", f"spark://127.0.0.1:{cluster.port('MASTER')}"],
            *["--name", "pytest spark-sql", "--conf", "spark.ui.enabled=false"],
            *["--conf", "spark.executor.memory=512m"],
            "-e",
            "select count(*) from shared.songs;"
            " create table shared.answers using iceberg as select 42 as answer;",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[:1] == ["2"], done.stdout
    # ... and the Thrift server sees the table the other process made.
    assert cluster.query("select answer from shared.answers") == [(42,)]
    # spark-sql ran on the cluster, beside the Thrift server, not locally.
    finished = [app["name"] for app in cluster.master_json()["completedapps"]]
    assert "pytest spark-sql" in finished, finished

    # The catalog is PostgreSQL's: Iceberg's JDBC catalog tables there name both.
    conninfo = admin_conninfo(cluster.env).replace(
        "dbname=postgres", f"dbname={lake_catalog.catalog_database(cluster.env)}"
    )
    with psycopg.connect(conninfo) as conn:
        names = conn.execute(
            "select table_name from iceberg_tables where table_namespace = 'shared'"
        ).fetchall()
    assert sorted(name for (name,) in names) == ["answers", "songs"]


def test_a_second_start_reuses_the_running_cluster(cluster: Cluster) -> None:
    before = recorded_pids(cluster.spark_dir)
    assert sorted(before) == ["master", "thrift", "worker-1", "worker-2"]
    began = time.monotonic()
    again = cli(cluster.env, "start")
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stderr, again.stderr
    assert time.monotonic() - began < 10
    assert recorded_pids(cluster.spark_dir) == before
    assert f"SPARKIFY_SPARK_THRIFT_PORT={cluster.port('THRIFT')}" in again.stdout.splitlines()


def test_stop_leaves_none_of_its_jvms_alive(cluster: Cluster) -> None:
    pids = recorded_pids(cluster.spark_dir)
    family = [psutil.Process(pid) for pid in pids.values()]
    family += [child for process in family for child in process.children(recursive=True)]
    assert len(family) > len(pids), "no executor to stop: the first test should have made one"
    stopped = cli(cluster.env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == "stopped"
    alive = [process.pid for process in family if is_alive(process)]
    assert alive == [], f"still running after stop: {alive}"
    assert own_processes(cluster.spark_dir) == []
    assert cli(cluster.env, "status").stdout.startswith("stopped")
    assert cli(cluster.env, "stop").stdout.strip() == "not running"


def test_make_build_spark_on_a_stopped_cluster_says_how_to_start_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    """dbt only names the Thrift server it could not reach; `make build-spark`
    then gives the cluster's status, which says what to do (stopped above)."""
    built = subprocess.run(
        ["make", "--no-print-directory", "build-spark", f"SPARK_DIR={cluster.spark_dir}"],
        env={**cluster.env, "SPARKIFY_LAKE_CATALOG_DB": cluster.catalog_db},
        cwd=spark_cluster.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode != 0
    last = built.stdout.strip().splitlines()[-1]
    assert last.startswith("make build-spark: dbt failed. The Spark cluster: stopped"), last
    assert "'make spark-start' starts it" in last
    assert "Traceback" not in built.stdout + built.stderr


def test_a_taken_port_is_refused_in_one_line_and_nothing_starts(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    env = cluster_env(server_env, tmp_path / "spark", "sparkify_metastore_unused")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["SPARKIFY_SPARK_THRIFT_PORT"])))
        holder.listen()
        refused = cli(env, "start")
    assert refused.returncode == 1
    port = env["SPARKIFY_SPARK_THRIFT_PORT"]
    assert refused.stderr.strip().splitlines() == [
        f"spark_cluster: port {port} on 127.0.0.1 is in use: stop what holds it, "
        "or set SPARKIFY_SPARK_THRIFT_PORT to a free port"
    ]
    assert own_processes(tmp_path / "spark") == []


def test_a_daemon_that_dies_at_start_takes_the_others_down(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    metastore_db = f"sparkify_metastore_pytest_{uuid.uuid4().hex[:12]}"
    env = cluster_env(server_env, tmp_path / "spark", metastore_db)
    # A value Spark refuses: the master and workers start, then the Thrift server dies.
    env["SPARKIFY_SPARK_EXECUTOR_MEMORY"] = "lots"
    try:
        failed = cli(env, "start")
    finally:
        drop_database(server_env, metastore_db)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("spark_cluster: the Thrift server exited at start: "), failed.stderr
    assert "Traceback" not in failed.stderr
    logs = tmp_path / "spark" / "cluster" / "logs"
    assert "Started daemon" in (logs / "master.log").read_text()  # it did get that far
    assert own_processes(tmp_path / "spark") == []
    assert not list((tmp_path / "spark" / "cluster").glob("*.pid"))
