"""Read the lake's Iceberg tables back with pyiceberg, as the Spark sources read them (test code).

`current` is what the views of schema raw on Spark hold (macros/landing.sql):
rows of committed loads only (those in loads), each file's rows from the load
of its current manifest row (its latest committed one, by the load that wrote
it), and no file a prune removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sparkify.loader import lake_catalog

if TYPE_CHECKING:
    from pyiceberg.table import Table

Row = dict[str, Any]


def s3_properties(env: Mapping[str, str]) -> dict[str, str]:
    """pyiceberg's settings for the tests' S3 server, from its AWS variables."""
    return {
        "s3.endpoint": env["AWS_ENDPOINT_URL"],
        "s3.access-key-id": env["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": env["AWS_SECRET_ACCESS_KEY"],
        "s3.region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "s3.force-virtual-addressing": "false",
    }


def open_table(env: Mapping[str, str], table: str) -> Table:
    """One landing table from the catalog that `env` names (PG* variables and
    SPARKIFY_LAKE_CATALOG_DB; AWS_* for an s3:// lake)."""
    # Imported here: the Spark test modules that use this one are collected
    # by every pytest run, and pyiceberg comes with requirements-spark.txt only.
    from pyiceberg.catalog.sql import SqlCatalog

    from sparkify.loader.lake_store import sqlalchemy_url

    properties = {"uri": sqlalchemy_url(env)}
    if env.get("AWS_ENDPOINT_URL"):
        properties.update(s3_properties(env))
    catalog = SqlCatalog(lake_catalog.CATALOG_NAME, **properties)
    try:
        return catalog.load_table((lake_catalog.NAMESPACE, table))
    finally:
        catalog.close()


def lake_rows(env: Mapping[str, str], table: str) -> list[Row]:
    """Every row of a landing table, committed or not."""
    return list(open_table(env, table).scan().to_arrow().to_pylist())


def current(env: Mapping[str, str], table: str) -> list[Row]:
    """What the raw.<table> view on Spark holds."""
    committed = {row["load_id"] for row in lake_rows(env, "loads")}
    if table == "loads":
        return lake_rows(env, "loads")
    manifest: dict[str, Row] = {}
    for row in sorted(lake_rows(env, "load_manifest"), key=lambda r: r["recorded_by_load"]):
        if row["recorded_by_load"] in committed:
            manifest[row["source_file"]] = row
    if table == "load_manifest":
        return [row for row in manifest.values() if not row["is_removed"]]
    versions = {(name, row["load_id"]) for name, row in manifest.items() if not row["is_removed"]}
    return [
        row for row in lake_rows(env, table) if (row["source_file"], row["load_id"]) in versions
    ]
