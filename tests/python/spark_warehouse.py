"""The Spark target from the tests: its environment, dbt on it, and its tables.

A Spark warehouse here is a folder: the Derby metastore, the managed tables
(warehouse/<schema>.db/<table>/, Parquet) and Spark's temporary files, as the
`spark` output of profiles.yml.example puts them under SPARKIFY_SPARK_DIR. The
tables are read back with pyarrow once dbt has finished: no second Spark
process, which the Derby metastore would refuse while dbt holds it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

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


def spark_env(base: dict[str, str], spark_dir: Path, lake: Path) -> dict[str, str]:
    """The environment of `dbt --target spark` on a warehouse of its own."""
    (spark_dir / "tmp").mkdir(parents=True, exist_ok=True)
    return {
        **base,
        "SPARKIFY_SPARK_DIR": str(spark_dir),
        "SPARKIFY_LAKE": str(lake),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def table_dirs(spark_dir: Path, schema: str) -> dict[str, Path]:
    root = spark_dir / "warehouse" / f"{schema}.db"
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


def spark_tables(spark_dir: Path, schemas: tuple[str, ...]) -> dict[str, list[tuple]]:
    """Every table of these schemas: `schema.table` -> normalised rows."""
    found = {}
    for schema in schemas:
        for name, path in table_dirs(spark_dir, schema).items():
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
