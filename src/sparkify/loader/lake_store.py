"""The lake's Iceberg tables: open the catalog, hold the lake's lock, find or create the tables.

The catalog is pyiceberg's SqlCatalog in the PostgreSQL database that
lake_catalog.py names (created when missing). Its rows say where each table's
metadata is; a table's data and metadata files are under the lake (a folder,
or an s3:// prefix written through the AWS variables of the S3 source).

One loader at a time per lake: a PostgreSQL advisory lock in the catalog's
database, keyed by the lake's location, held by a session of its own for the
whole run. It works the same for a folder and for object storage (which has no
file lock), and a loader killed by SIGKILL lets it go with its session.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from sqlalchemy.engine import URL

from sparkify.loader import lake_catalog
from sparkify.loader.errors import ServerError, UsageError
from sparkify.messages import one_line

log = logging.getLogger("load_raw")

# The lake's lock key: hashtext of this and the warehouse location, in the catalog's database.
LAKE_LOCK = "sparkify.load_raw.lake:"
# How long a request to an s3:// lake may take to connect, and to answer, in seconds;
# pyarrow's S3 client tries a failed request again (3 attempts) before giving up.
S3_CONNECT_SECONDS = 5.0
# Every commit writes a new metadata file: keep the last few, not all of them.
TABLE_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}
# The folders of a lake written before it was Iceberg tables (one Parquet
# file per load in each): no reader uses them now.
PARQUET_LAKE_FOLDERS = lake_catalog.TABLES


def _server_env() -> dict[str, str]:
    """The catalog server's libpq variables; a server that cannot be started or
    reached is a ServerError (one line, what to do)."""
    try:
        env = lake_catalog.server_env()
        params = lake_catalog.connection_params(env)
        admin = make_conninfo(**{**params, "dbname": "postgres"})
        with psycopg.connect(admin, autocommit=True) as conn:
            found = conn.execute(
                "select 1 from pg_database where datname = %s", [params["dbname"]]
            ).fetchone()
            if found is None:
                log.info("creating the lake catalog's database %s", params["dbname"])
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(params["dbname"])))
    except psycopg.errors.DuplicateDatabase:
        pass  # another loader created it a moment ago
    except Exception as exc:  # psycopg's or embedded_pg's errors: what the server said
        raise ServerError(
            f"cannot reach the lake catalog's PostgreSQL (database "
            f"{lake_catalog.catalog_database()}): {one_line(exc)}; set PGHOST/PGPORT/PGUSER "
            "to a running server, or unset PGHOST to use the embedded one"
        ) from exc
    return env


def sqlalchemy_url(env: Mapping[str, str]) -> str:
    """The catalog's database for SQLAlchemy's psycopg (3) driver. Every part is
    a query parameter, so that a Unix socket's folder is a host like any other;
    the password stays with libpq (PGPASSWORD, ~/.pgpass)."""
    query = {
        key: value for key, value in lake_catalog.connection_params(env).items() if key != "dbname"
    }
    database = lake_catalog.catalog_database(env)
    url = URL.create("postgresql+psycopg", database=database, query=query)
    return url.render_as_string(hide_password=False)


def _s3_properties(store_timeout: float) -> dict[str, str]:
    """pyiceberg's S3 settings from the AWS chain the S3 source reads (boto3's:
    variables, profile, region); a local server is reached path-style."""
    import boto3

    session = boto3.Session()
    properties = {
        "s3.connect-timeout": str(S3_CONNECT_SECONDS),
        "s3.request-timeout": str(store_timeout),
        "s3.force-virtual-addressing": "false",
        "s3.region": session.region_name or "us-east-1",
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties["s3.endpoint"] = endpoint
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        properties["s3.access-key-id"] = frozen.access_key
        properties["s3.secret-access-key"] = frozen.secret_key
        if frozen.token:
            properties["s3.session-token"] = frozen.token
    return properties


class LakeStore:
    """A lake's catalog and its tables, for one run of the loader."""

    def __init__(self, lake: Path | str, store_timeout: float):
        self.lake = lake
        self.warehouse = lake_catalog.warehouse(lake)
        self.env = _server_env()
        properties = {"uri": sqlalchemy_url(self.env), "warehouse": self.warehouse}
        if lake_catalog.is_s3(lake):
            properties.update(_s3_properties(store_timeout))
        try:
            self.catalog = SqlCatalog(lake_catalog.CATALOG_NAME, **properties)
        except Exception as exc:  # SQLAlchemy's errors: what the server said
            raise ServerError(f"cannot open the lake catalog: {one_line(exc)}") from exc
        self._tables: dict[str, Table] = {}

    def describe(self) -> str:
        return f"catalog {lake_catalog.CATALOG_NAME} in database {lake_catalog.catalog_database()}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One loader at a time per lake: a second one waits, and says for whom."""
        params = lake_catalog.connection_params(self.env)
        key = LAKE_LOCK + self.warehouse
        name = f"load_raw --lake (pid {os.getpid()})"
        conninfo = make_conninfo(**params, application_name=name)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            taken = conn.execute("select pg_try_advisory_lock(hashtext(%s))", [key]).fetchone()
            if not (taken and taken[0]):
                # One lake per catalog database: its other loader is the holder.
                holder = conn.execute(
                    "select application_name from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid() "
                    "and application_name like 'load_raw --lake%' limit 1"
                ).fetchone()
                who = f" ({holder[0]})" if holder and holder[0] else ""
                log.warning(
                    "another loader%s is writing to the lake %s: waiting for it to finish "
                    "(stop it, or Ctrl-C to stop waiting; nothing of this run is written yet)",
                    who,
                    self.lake,
                )
                conn.execute("select pg_advisory_lock(hashtext(%s))", [key])
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("select pg_advisory_unlock(hashtext(%s))", [key])

    def tables(self, schemas: dict[str, pa.Schema]) -> dict[str, Table]:
        """The landing tables, created (empty) where missing. Refused when the
        catalog's tables are another lake's: one catalog, one lake."""
        namespace = lake_catalog.NAMESPACE
        if not lake_catalog.is_s3(self.lake):
            old = [
                name
                for name in PARQUET_LAKE_FOLDERS
                if any((Path(self.lake) / name).glob("load-*.parquet"))
            ]
            if old:
                log.warning(
                    "%s also holds the Parquet folders of the loader before Iceberg "
                    "(%s): no reader uses them now; delete them to free the space",
                    self.lake,
                    ", ".join(f"{name}/" for name in old),
                )
        self.catalog.create_namespace_if_not_exists(namespace)
        for name, schema in schemas.items():
            identifier = (namespace, name)
            try:
                table = self.catalog.load_table(identifier)
            except FileNotFoundError as exc:
                raise UsageError(
                    f"the lake catalog ({self.describe()}) lists {namespace}.{name}, whose "
                    f"files are gone ({one_line(exc)}): the lake was deleted or moved; drop "
                    "that database to start the lake anew, or give this lake another "
                    f"({lake_catalog.CATALOG_DATABASE_VARIABLE}=another_database)"
                ) from exc
            except NoSuchTableError:
                table = self.catalog.create_table_if_not_exists(
                    identifier,
                    schema=schema,
                    location=lake_catalog.table_location(self.lake, name),
                    properties=TABLE_PROPERTIES,
                )
            expected = lake_catalog.table_location(self.lake, name)
            if table.location().rstrip("/") != expected:
                raise UsageError(
                    f"the lake catalog ({self.describe()}) holds the landing tables of "
                    f"another lake ({table.location().rsplit('/', 2)[0]}), not {self.lake}: "
                    f"load into that lake, or give this one a catalog of its own "
                    f"({lake_catalog.CATALOG_DATABASE_VARIABLE}=another_database)"
                )
            self._tables[name] = table
        return self._tables
