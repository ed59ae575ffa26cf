"""The Spark target from the tests: a cluster, dbt's environment on it, and its tables.

The tests' cluster is the project's own (ingest/spark_cluster.py), started with
its CLI as a user would, in a SPARK_DIR, on free ports and with a metastore
database of its own (conftest.py starts one per test session). dbt reaches it
through its Thrift server, as the `spark` output of profiles.yml.example does
anywhere. Its managed tables are Parquet folders in the cluster's warehouse
(SPARK_DIR/cluster/warehouse/<schema>.db/<table>/), read back with pyarrow once
dbt has finished: exact values (decimals, timestamps) where PyHive's rows give
text.
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

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import spark_cluster

# The marts and report tables compared between engines, with their keys.
COMPARED_SCHEMAS = ("analytics", "reports")


def lake_table(lake: Path, table: str) -> list[dict]:
    """Every row of a lake folder's Parquet files, committed or not."""
    files = sorted((lake / table).glob("load-*.parquet"))
    if not files:
        return []
    return pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()


def current(lake: Path, table: str) -> list[dict]:
    """What the raw.<table> view on Spark holds (macros/landing.sql), read with
    pyarrow: committed loads only, each file's rows from the load of its
    current manifest row (the latest committed one, by the load that wrote it)."""
    committed = {row["load_id"] for row in lake_table(lake, "loads")}
    manifest: dict[str, dict] = {}
    rows = lake_table(lake, "load_manifest")
    for row in sorted(rows, key=lambda r: r.get("recorded_by_load") or r["load_id"]):
        if (row.get("recorded_by_load") or row["load_id"]) in committed:
            manifest[row["source_file"]] = row
    if table == "load_manifest":
        return [row for row in manifest.values() if not row["is_removed"]]
    versions = {(name, row["load_id"]) for name, row in manifest.items() if not row["is_removed"]}
    return [
        row for row in lake_table(lake, table) if (row["source_file"], row["load_id"]) in versions
    ]


REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_CLI = [sys.executable, str(REPO_ROOT / "ingest" / "spark_cluster.py")]


def cluster_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """ingest/spark_cluster.py, as a user runs it."""
    return subprocess.run(
        [*CLUSTER_CLI, *args], env=env, capture_output=True, text=True, timeout=400, cwd=REPO_ROOT
    )


def cluster_env(server_env: dict[str, str], spark_dir: Path, metastore_db: str) -> dict[str, str]:
    """The environment of a cluster of the test's own: its folder, ports and catalog."""
    return {
        **server_env,
        **{key: str(value) for key, value in spark_cluster.free_ports().items()},
        "SPARKIFY_SPARK_DIR": str(spark_dir),
        "SPARKIFY_METASTORE_DB": metastore_db,
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
    def warehouse(self) -> Path:
        return self.spark_dir / "cluster" / "warehouse"

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
        """Drop every database but `default`, with its tables: a test that builds
        starts from an empty catalog, as on a fresh cluster (the catalog outlives
        each dbt run, so incremental models would build on another test's tables)."""
        names = [name for (name,) in self.query("show databases") if name != "default"]
        self.query(*(f"drop database if exists `{name}` cascade" for name in names))


def spark_env(base: dict[str, str], cluster: SparkCluster, lake: Path) -> dict[str, str]:
    """The environment of `dbt --target spark` on the cluster's Thrift server."""
    return {
        **base,
        "SPARKIFY_SPARK_THRIFT_HOST": "127.0.0.1",
        "SPARKIFY_SPARK_THRIFT_PORT": str(cluster.port("THRIFT")),
        "SPARKIFY_LAKE": str(lake),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def table_dirs(warehouse: Path, schema: str) -> dict[str, Path]:
    root = warehouse / f"{schema}.db"
    if not root.is_dir():
        return {}
    return {path.name: path for path in sorted(root.iterdir()) if path.is_dir()}


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


# The folder name of a partition whose value is null.
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def spark_table(path: Path) -> list[tuple]:
    """A table's rows. A partitioned table (an event_days model: by day) keeps
    its partition column in folder names (date_day=2018-11-05), which pyarrow
    reads as text: given back as dates, as the column's values are."""
    partitioning = ds.HivePartitioning.discover(null_fallback=HIVE_NULL_PARTITION)
    table = pq.read_table(path, partitioning=partitioning)
    partition_columns = {child.name.split("=")[0] for child in path.iterdir() if "=" in child.name}
    columns = table.column_names
    data = [
        [
            dt.date.fromisoformat(value) if name in partition_columns and value else value
            for value in table.column(name).to_pylist()
        ]
        for name in columns
    ]
    return rows_of(columns, list(zip(*data, strict=True)) if data else [])


def spark_tables(warehouse: Path, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every table of these schemas: `schema.table` -> normalised rows."""
    found = {}
    for schema in schemas:
        for name, path in table_dirs(warehouse, schema).items():
            if name.endswith(("__rewrite", "consumed_loads")):
                continue
            found[f"{schema}.{name}"] = spark_table(path)
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
