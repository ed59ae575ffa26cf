"""The Spark target from the tests: a cluster, dbt's environment on it, and its tables.

The tests' cluster is the project's own (src/sparkify/spark_cluster.py), started with
its CLI as a user would, in a SPARK_DIR, on free ports and with a metastore
database and an Iceberg catalog database of its own (conftest.py starts one per
test session). dbt reaches it through its Thrift server, as the `spark` output
of profiles.yml.example does anywhere. Its tables are Iceberg tables named in
the catalog (in PostgreSQL), read back with pyiceberg once dbt has finished:
exact values (decimals, timestamps) where PyHive's rows give text.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

from sparkify import spark_cluster
from sparkify.checkout import REPO_ROOT
from sparkify.loader import lake_catalog

# The marts and report tables compared between engines, with their keys.
COMPARED_SCHEMAS = ("analytics", "reports")


CLUSTER_CLI = [sys.executable, "-m", "sparkify.spark_cluster"]


def cluster_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """src/sparkify/spark_cluster.py, as a user runs it."""
    return subprocess.run(
        [*CLUSTER_CLI, *args], env=env, capture_output=True, text=True, timeout=400, cwd=REPO_ROOT
    )


def cluster_env(server_env: dict[str, str], spark_dir: Path, metastore_db: str) -> dict[str, str]:
    """The environment of a cluster of the test's own: its folder, ports and
    catalogs (the Iceberg catalog's database: the metastore's name + _lake)."""
    return {
        **server_env,
        **{key: str(value) for key, value in spark_cluster.free_ports().items()},
        "SPARKIFY_SPARK_DIR": str(spark_dir),
        "SPARKIFY_METASTORE_DB": metastore_db,
        lake_catalog.CATALOG_DATABASE_VARIABLE: f"{metastore_db}_lake",
    }


@dataclass
class SparkCluster:
    """A running cluster of the tests (its environment, as cluster_env made it)."""

    env: dict[str, str]
    spark_dir: Path
    metastore_db: str

    def port(self, name: str) -> int:
        return int(self.env[f"SPARKIFY_SPARK_{name}_PORT"])

    @property
    def catalog_db(self) -> str:
        return self.env[lake_catalog.CATALOG_DATABASE_VARIABLE]

    def master_json(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port('MASTER_UI')}/json/"
        with urllib.request.urlopen(url, timeout=10) as response:
            found: dict[str, Any] = json.load(response)
        return found

    def query(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements through the Thrift server; the last one's rows."""
        from pyhive import hive

        connection = hive.connect(host="127.0.0.1", port=self.port("THRIFT"), username="pytest")
        try:
            cursor = connection.cursor()
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall() if cursor.description else []
            return rows
        finally:
            connection.close()

    def reset(self) -> None:
        """Drop every schema but `default`, with its tables and views: a test that
        builds starts from an empty catalog, as on a fresh cluster (the catalog
        outlives each dbt run, so incremental models would build on another
        test's tables). Iceberg's catalog drops no schema that holds anything."""
        names = [name for (name,) in self.query("show namespaces") if name != "default"]
        for name in names:
            views = [row[1] for row in self.query(f"show views in `{name}`")]
            tables = [row[1] for row in self.query(f"show tables in `{name}`")]
            self.query(
                *(f"drop view if exists `{name}`.`{view}`" for view in views),
                *(f"drop table if exists `{name}`.`{table}`" for table in tables),
                f"drop namespace if exists `{name}`",
            )


def spark_env(base: dict[str, str], cluster: SparkCluster, lake: Path | str) -> dict[str, str]:
    """The environment of `dbt --target spark` on the cluster's Thrift server."""
    return {
        **base,
        "SPARKIFY_SPARK_THRIFT_HOST": "127.0.0.1",
        "SPARKIFY_SPARK_THRIFT_PORT": str(cluster.port("THRIFT")),
        "SPARKIFY_LAKE": str(lake),
        lake_catalog.CATALOG_DATABASE_VARIABLE: cluster.catalog_db,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def normalised(value: object) -> object:
    """One spelling per value across engines: exact numbers without trailing
    zeros, timestamps as naive UTC datetimes, dates as dates."""
    if isinstance(value, Decimal):
        return value.normalize() if value != 0 else Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value)).normalize()
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    return value


def rows_of(columns: list[str], rows: list[tuple]) -> list[tuple]:
    """Rows as sorted tuples of (column, value) pairs, columns by name."""
    order = sorted(range(len(columns)), key=lambda i: columns[i])
    out = [tuple((columns[i], normalised(row[i])) for i in order) for row in rows]
    return sorted(out, key=repr)


def spark_tables(cluster: SparkCluster, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every table of these schemas in the cluster's Iceberg catalog, read with
    pyiceberg (each table's current snapshot): `schema.table` -> normalised rows.
    Views are not tables: the catalog lists them apart."""
    from pyiceberg.catalog.sql import SqlCatalog

    from sparkify.loader.lake_store import sqlalchemy_url

    catalog = SqlCatalog(lake_catalog.CATALOG_NAME, uri=sqlalchemy_url(cluster.env))
    found = {}
    try:
        for schema in schemas:
            if (schema,) not in catalog.list_namespaces():
                continue
            for _, name in catalog.list_tables(schema):
                if name == "consumed_loads":
                    continue
                table = catalog.load_table((schema, name)).scan().to_arrow()
                columns = table.column_names
                rows = list(zip(*(table.column(c).to_pylist() for c in columns), strict=True))
                found[f"{schema}.{name}"] = rows_of(columns, rows)
    finally:
        catalog.close()
    return found


def pg_tables(conn, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    found = {}
    for schema, name in conn.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema = any(%s) and table_type = 'BASE TABLE' order by 1, 2",
        [list(schemas)],
    ).fetchall():
        cursor = conn.execute(f'select * from "{schema}"."{name}"')
        columns = [column.name for column in cursor.description]
        found[f"{schema}.{name}"] = rows_of(columns, cursor.fetchall())
    return found


def differences(left: dict[str, list[tuple]], right: dict[str, list[tuple]]) -> dict[str, str]:
    """Per table that differs, what differs, in a few words (and a few rows)."""
    out = {}
    for name in sorted(set(left) | set(right)):
        if name not in left or name not in right:
            out[name] = "only in " + ("the first" if name in left else "the second")
            continue
        a, b = left[name], right[name]
        if a != b:
            only_a = [row for row in a if row not in b][:2]
            only_b = [row for row in b if row not in a][:2]
            out[name] = f"{len(a)} vs {len(b)} rows; first only: {only_a}; second only: {only_b}"
    return out


def own_processes(spark_dir: Path) -> list[psutil.Process]:
    """Every process whose command line names this test's SPARK_DIR: the daemons'
    JVMs and their executors all do (their classpath holds its conf/ folder)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(spark_dir) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie (a worker's finished launcher)
        return ""


def is_alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def recorded_pids(spark_dir: Path) -> dict[str, int]:
    return {
        path.stem: int(path.read_text()) for path in sorted((spark_dir / "cluster").glob("*.pid"))
    }
