"""The lake's Iceberg catalog, said once for the loader and for Spark.

The landing tables of `load_raw.py --lake` are Apache Iceberg tables. Their
catalog is a SQL catalog kept in PostgreSQL: the tables iceberg_tables and
iceberg_namespace_properties, which pyiceberg's SqlCatalog writes and
Iceberg's Java JdbcCatalog reads, in a database of its own (CATALOG_DATABASE)
on the embedded server, or on the server the libpq variables name (PGHOST,
PGPORT, PGUSER, PGPASSWORD or ~/.pgpass). The loader writes the tables, the
Spark cluster reads them through the same rows: each row carries the
catalog's name, so both must use CATALOG_NAME.

The warehouse (where the tables' files are) is the lake: a local folder, or an
s3://bucket/prefix reached with the AWS variables of the S3 source. Each table
lives at LAKE/NAMESPACE/<table>/ (data/ and metadata/ under it).

Nothing here imports pyiceberg: Spark's side reads these names for its config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The name Spark knows the catalog by. The JDBC catalog keeps it in each row
# (iceberg_tables.catalog_name), so the Java side must be configured with the
# same name: a catalog of its own (Iceberg's SparkCatalog), Spark's default one
# (spark.sql.defaultCatalog), not spark_catalog: Iceberg's SparkSessionCatalog
# lists tables from Spark's Hive catalog, where no table of this one is named.
CATALOG_NAME = "sparkify"
# The namespace (a Spark schema) of the landing tables: the lake tables that
# the views of schema raw (the sources) read.
NAMESPACE = "raw_lake"
# The database that holds the catalog's tables; SPARKIFY_LAKE_CATALOG_DB names another.
DEFAULT_CATALOG_DATABASE = "sparkify_lake_catalog"
CATALOG_DATABASE_VARIABLE = "SPARKIFY_LAKE_CATALOG_DB"
# The landing tables, one Iceberg table each.
TABLES = ("songs", "events", "rejects", "load_manifest", "loads")


def catalog_database(env: Mapping[str, str] | None = None) -> str:
    """The catalog's database: SPARKIFY_LAKE_CATALOG_DB of `env` (default: this
    process's environment), or sparkify_lake_catalog."""
    env = os.environ if env is None else env
    return env.get(CATALOG_DATABASE_VARIABLE, "").strip() or DEFAULT_CATALOG_DATABASE


def is_s3(lake: str | Path) -> bool:
    return str(lake).startswith("s3://")


def warehouse(lake: str | Path) -> str:
    """The warehouse location of a lake, as Iceberg writes it in the tables'
    metadata: file:///absolute/path for a folder, s3://bucket/prefix as given."""
    if is_s3(lake):
        return str(lake).rstrip("/")
    return Path(lake).resolve().as_uri()


def table_location(lake: str | Path, table: str) -> str:
    """Where one landing table's files are: LAKE/NAMESPACE/table."""
    return f"{warehouse(lake)}/{NAMESPACE}/{table}"


def server_env() -> dict[str, str]:
    """The libpq variables of the catalog's server: PGHOST's when it is set,
    otherwise the embedded server's (started unless it runs, as every make
    target does). PGDATABASE is the catalog's database."""
    if os.environ.get("PGHOST"):
        return {**os.environ, "PGDATABASE": catalog_database()}
    from sparkify import embedded_pg

    return {**os.environ, **embedded_pg.start(database=catalog_database())}


def connection_params(env: Mapping[str, str]) -> dict[str, str]:
    """host, port, user and dbname of the catalog's database from libpq
    variables (the password stays with libpq: PGPASSWORD or ~/.pgpass)."""
    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user"}
    params = {key: env[var] for var, key in keys.items() if env.get(var)}
    return {**params, "dbname": catalog_database(env)}
