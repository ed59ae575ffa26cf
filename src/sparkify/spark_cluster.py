"""Start, reuse or stop the project's Spark cluster: a standalone master, two
workers and a Spark Thrift server, on 127.0.0.1, from pyspark's own package.

The model is the embedded PostgreSQL (embedded_pg.py): `start` starts what is
not running and reuses what is, `stop` ends each daemon by the PID it recorded
(never by name), `status` says one line, `env` prints the variables a client
needs. pyspark's package holds `bin/spark-class` and `bin/spark-submit` but no
`start-*.sh` scripts, so each daemon is one process started here:

  master    spark-class org.apache.spark.deploy.master.Master
  worker-N  spark-class org.apache.spark.deploy.worker.Worker (1 core, 1g each)
  thrift    spark-submit --class ...HiveThriftServer2 spark-internal, an
            application of the cluster that holds spark.cores.max of its cores

Everything lives under SPARK_DIR/cluster/ (SPARKIFY_SPARK_DIR, default .spark/):
a PID file per daemon, cluster.json (ports and metastore), logs/, work/ (the
workers' executors), conf/ (the SPARK_CONF_DIR every daemon and any other
Spark process of this cluster reads) and warehouse/ (the managed tables).

The catalog of the warehouse is Apache Iceberg's JDBC catalog `sparkify`,
Spark's default catalog (spark.sql.defaultCatalog): the rows of iceberg_tables
in the PostgreSQL database that sparkify/loader/lake_catalog.py names (default
sparkify_lake_catalog), which the loader (pyiceberg) writes the landing tables
into too. Every table is an Iceberg table: each write is one commit, a swap of
the table's metadata file in that row. Spark's own session catalog
(spark_catalog, the Hive metastore the Thrift server starts with) is kept in
PostgreSQL too, in the database SPARKIFY_METASTORE_DB (default
sparkify_metastore): any number of Spark processes share both, which Derby
cannot do. The metastore's schema is created before the first start with
DataNucleus's SchemaTool from pyspark's jars; the Thrift server never creates
tables itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sparkify.checkout import REPO_ROOT
from sparkify.loader import lake_catalog
from sparkify.processes import live_process

DEFAULT_SPARK_DIR = REPO_ROOT / ".spark"
# The jars the cluster needs beyond pyspark's (Iceberg's runtime, the PostgreSQL
# driver), pinned with their checksums, and the project's cache of them (shared
# by every SPARK_DIR: `make clean` empties it).
JARS_LIST = REPO_ROOT / "spark-jars.txt"
JARS_DIR = REPO_ROOT / ".spark" / "jars"
LOG4J2_PROPERTIES = Path(__file__).with_name("spark_log4j2.properties")
DEFAULT_METASTORE_DB = "sparkify_metastore"
HOST = "127.0.0.1"
WORKERS = 2

# Each port: its variable and default. A worker's web UI is WORKER_UI + its index.
# 8090 rather than Spark's 8080: `make docs` serves on 8080.
PORT_VARIABLES = {
    "master": ("SPARKIFY_SPARK_MASTER_PORT", 7077),
    "master_ui": ("SPARKIFY_SPARK_MASTER_UI_PORT", 8090),
    "worker_ui": ("SPARKIFY_SPARK_WORKER_UI_PORT", 8091),
    "thrift": ("SPARKIFY_SPARK_THRIFT_PORT", 10000),
}
# The main class each daemon's JVM runs: a recorded PID counts as ours only while
# its command line names it (a PID reused by another process is not ours).
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
THRIFT_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
START_TIMEOUT = 180.0  # the Thrift server takes ~20 s on 2 busy cores; leave room
STOP_TIMEOUT = 30.0

log = logging.getLogger("spark_cluster")


class SparkClusterError(RuntimeError):
    """A user-facing failure: printed in one line, never as a traceback."""


@dataclass(frozen=True)
class Settings:
    """What a start uses, from the environment."""

    spark_dir: Path
    ports: dict[str, int]
    metastore_db: str
    worker_cores: int
    worker_memory: str
    thrift_cores: int
    executor_memory: str
    thrift_memory: str

    @property
    def cluster_dir(self) -> Path:
        return self.spark_dir / "cluster"

    def worker_ui_port(self, index: int) -> int:
        return self.ports["worker_ui"] + index - 1


def _port_from_env(name: str, variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SparkClusterError(f"{variable}={value!r} is not a port number (1-65535)")
    return int(value)


def settings_from_env() -> Settings:
    spark_dir = Path(os.environ.get("SPARKIFY_SPARK_DIR", "").strip() or DEFAULT_SPARK_DIR)
    ports = {name: _port_from_env(name, *spec) for name, spec in PORT_VARIABLES.items()}
    return Settings(
        spark_dir=spark_dir.resolve(),
        ports=ports,
        metastore_db=os.environ.get("SPARKIFY_METASTORE_DB", "").strip() or DEFAULT_METASTORE_DB,
        worker_cores=int(os.environ.get("SPARKIFY_SPARK_WORKER_CORES", "1")),
        worker_memory=os.environ.get("SPARKIFY_SPARK_WORKER_MEMORY", "1g"),
        # One of the two workers' cores: a second application (spark-sql, a
        # notebook, a second build) can run while the Thrift server holds its own.
        thrift_cores=int(os.environ.get("SPARKIFY_SPARK_THRIFT_CORES", "1")),
        executor_memory=os.environ.get("SPARKIFY_SPARK_EXECUTOR_MEMORY", "512m"),
        # One knob for every daemon's heap, as Spark's own scripts use it for theirs.
        thrift_memory=os.environ.get("SPARK_DAEMON_MEMORY", "").strip() or "1g",
    )


# --- the jars ---------------------------------------------------------------


def pinned_jars() -> list[tuple[str, str]]:
    """(group:artifact:version, sha256) for each line of spark-jars.txt."""
    pins = []
    for line in JARS_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            coordinate, digest = line.split()
            pins.append((coordinate, digest))
    return pins


def _jar_path(coordinate: str, jars_dir: Path) -> Path:
    _, artifact, version = coordinate.split(":")
    return jars_dir / f"{artifact}-{version}.jar"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_jars(jars_dir: Path = JARS_DIR) -> list[Path]:
    """Fetch the pinned jars with mvn unless they are cached; check each checksum."""
    jars_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for coordinate, digest in pinned_jars():
        path = _jar_path(coordinate, jars_dir)
        if not path.exists() or _sha256(path) != digest:
            if shutil.which("mvn") is None:
                raise SparkClusterError(
                    "mvn is not installed: install Maven (Debian: apt-get install maven), "
                    "then run 'make spark-jars'"
                )
            log.info("fetching %s with mvn", coordinate)
            done = subprocess.run(
                [
                    *["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={coordinate}"],
                    f"-DoutputDirectory={jars_dir}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not path.exists():
                said = (done.stdout + done.stderr).strip().splitlines()
                raise SparkClusterError(
                    f"mvn could not fetch {coordinate}: {said[-1] if said else done.returncode}"
                )
        if _sha256(path) != digest:
            raise SparkClusterError(
                f"{path} does not match the checksum in {JARS_LIST.name}: delete it and "
                "run 'make spark-jars' again"
            )
        paths.append(path)
    return paths


def checked_jars(jars_dir: Path = JARS_DIR) -> list[Path]:
    """The pinned jars, as cached: never downloads (a start must not)."""
    paths = []
    for coordinate, digest in pinned_jars():
        path = _jar_path(coordinate, jars_dir)
        if not path.exists() or _sha256(path) != digest:
            raise SparkClusterError(
                f"{path.name} is missing from {jars_dir} or changed: run 'make spark-jars'"
            )
        paths.append(path)
    return paths


# --- the metastore in PostgreSQL --------------------------------------------


@dataclass(frozen=True)
class Metastore:
    database: str
    jdbc_url: str
    user: str
    password: str  # never printed: it goes to the 0600 hive-site.xml only
    described: str  # for status lines: where the catalog is
    catalog_jdbc_url: str  # Iceberg's JDBC catalog (lake_catalog's database)
    catalog_database: str


def _pg_env(database: str) -> dict[str, str]:
    """The libpq variables of the metastore's server: PGHOST's, or the embedded one's
    (started unless it runs, as every make target does)."""
    if os.environ.get("PGHOST"):
        return dict(os.environ)
    from sparkify import embedded_pg

    try:
        return {**os.environ, **embedded_pg.start(database=database)}
    except embedded_pg.EmbeddedPgError as exc:
        raise SparkClusterError(f"the metastore's PostgreSQL: {exc}") from exc


def metastore(settings: Settings) -> Metastore:
    """Make sure the metastore database and its schema exist; how JDBC reaches it."""
    env = _pg_env(settings.metastore_db)
    user = env.get("PGUSER", "postgres")
    password = env.get("PGPASSWORD", "")
    _ensure_database(env, settings.metastore_db)
    catalog_database = lake_catalog.catalog_database()
    _ensure_database(env, catalog_database)
    jdbc_url, where = _jdbc_url(env, settings.metastore_db)
    found = Metastore(
        database=settings.metastore_db,
        jdbc_url=jdbc_url,
        user=user,
        password=password,
        described=f"Iceberg catalog {lake_catalog.CATALOG_NAME} in database {catalog_database} "
        f"and Hive metastore in database {settings.metastore_db} on the PostgreSQL {where}",
        catalog_jdbc_url=_jdbc_url(env, catalog_database)[0],
        catalog_database=catalog_database,
    )
    if not _schema_exists(env, settings.metastore_db):
        _create_schema(settings, found)
    _ensure_default_namespace(env, catalog_database)
    return found


def _jdbc_url(env: dict[str, str], database: str) -> tuple[str, str]:
    """pgjdbc's URL of a database on the libpq variables' server, and where it is."""
    host = env.get("PGHOST", "localhost")
    port = env.get("PGPORT", "5432")
    if host.startswith("/"):
        # A Unix socket (the embedded server listens on nothing else). pgjdbc
        # speaks TCP only; junixsocket's factory hands it the socket's path.
        socket_path = f"{host}/.s.PGSQL.{port}"
        url = (
            f"jdbc:postgresql://localhost/{database}"
            "?socketFactory=org.newsclub.net.unix.AFUNIXSocketFactory$FactoryArg"
            f"&socketFactoryArg={socket_path}"
        )
        return url, f"at {socket_path}"
    return f"jdbc:postgresql://{host}:{port}/{database}", f"{host}:{port}"


def _with_options(jdbc_url: str, options: str) -> str:
    """A pgjdbc URL with the server settings `options` for its sessions."""
    from urllib.parse import quote

    return f"{jdbc_url}{'&' if '?' in jdbc_url else '?'}options={quote(options)}"


def _ensure_default_namespace(env: dict[str, str], database: str) -> None:
    """The catalog's namespace `default`: a Hive client (PyHive, so dbt-spark's
    thrift method; beeline) opens its session with `USE default`, which Spark
    refuses in a catalog without it. Made with pyiceberg's SqlCatalog, the
    loader's client of the same catalog, which creates its tables if missing."""
    from pyiceberg.catalog.sql import SqlCatalog

    from sparkify.loader.lake_store import sqlalchemy_url

    try:
        catalog = SqlCatalog(
            lake_catalog.CATALOG_NAME,
            uri=sqlalchemy_url({**env, lake_catalog.CATALOG_DATABASE_VARIABLE: database}),
        )
        catalog.create_namespace_if_not_exists("default")
    except Exception as exc:  # SQLAlchemy's or pyiceberg's: one line, what went wrong
        raise SparkClusterError(
            f"cannot prepare the Iceberg catalog in database {database}: "
            f"{str(exc).strip()}".splitlines()[0]
        ) from exc


def _connect(env: dict[str, str], database: str) -> Any:
    import psycopg
    from psycopg.conninfo import make_conninfo

    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGPASSWORD": "password"}
    params = {key: env[var] for var, key in keys.items() if env.get(var)}
    return psycopg.connect(make_conninfo(dbname=database, **params), autocommit=True)


def _ensure_database(env: dict[str, str], database: str) -> None:
    from psycopg import sql

    try:
        with _connect(env, "postgres") as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", [database])
            if found.fetchone() is None:
                log.info("creating the metastore database %s", database)
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    except Exception as exc:  # psycopg's errors: one line, what the server said
        raise SparkClusterError(
            f"cannot create the metastore database {database}: {str(exc).strip()}".splitlines()[0]
        ) from exc


def _schema_exists(env: dict[str, str], database: str) -> bool:
    # VERSION is the metastore's own marker table; SchemaTool creates it with the rest.
    with _connect(env, database) as conn:
        row = conn.execute("""select to_regclass('public."VERSION"') is not null""").fetchone()
        return bool(row and row[0])


# The DataNucleus settings Hive's metastore runs with (HiveConf's defaults): the
# schema must be created with the same identifier factory it is read with.
DATANUCLEUS = {
    "datanucleus.identifierFactory": "datanucleus1",
    "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
    "datanucleus.storeManagerType": "rdbms",
}


def _jdo_properties(found: Metastore) -> dict[str, str]:
    return {
        "javax.jdo.option.ConnectionURL": found.jdbc_url,
        "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "javax.jdo.option.ConnectionUserName": found.user,
        "javax.jdo.option.ConnectionPassword": found.password,
    }


def _create_schema(settings: Settings, found: Metastore) -> None:
    """Create the metastore's tables with DataNucleus SchemaTool from pyspark's jars.

    Not left to the Thrift server: a metastore that creates its schema on demand
    deadlocked on the first `create table` (issue 24)."""
    log.info("creating the metastore schema in %s", found.described)
    work = settings.cluster_dir / "schematool"
    work.mkdir(parents=True, exist_ok=True)
    jars = pyspark_home() / "jars"
    metastore_jar = next(jars.glob("hive-metastore-*.jar"), None)
    if metastore_jar is None:
        raise SparkClusterError(f"no hive-metastore jar in {jars}: run 'make spark-deps'")
    # SchemaTool reads the mapping from a file: package.jdo, from the metastore's jar.
    with zipfile.ZipFile(metastore_jar) as jar:
        (work / "package.jdo").write_bytes(jar.read("package.jdo"))
    properties = work / "datanucleus.properties"
    props = {**_jdo_properties(found), **DATANUCLEUS, "datanucleus.schema.autoCreateAll": "true"}
    properties.touch(mode=0o600)
    properties.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    classpath = ":".join([f"{jars}/*", *map(str, checked_jars())])
    with open(work / "schematool.log", "w") as out:
        done = subprocess.run(
            [
                *["java", "-cp", classpath, "org.datanucleus.store.schema.SchemaTool"],
                *["-create", "-api", "JDO", "-props", str(properties), str(work / "package.jdo")],
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=False,
        )
    properties.unlink()
    if done.returncode != 0:
        raise SparkClusterError(
            f"the metastore schema could not be created; see {work / 'schematool.log'}"
        )


# --- the daemons -------------------------------------------------------------


def pyspark_home() -> Path:
    # Found, not imported: importing pyspark costs a second and starts nothing
    # this module needs, and the type checker runs where pyspark is not installed.
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise SparkClusterError("pyspark is not installed: run 'make spark-deps'")
    return Path(spec.origin).parent


@dataclass(frozen=True)
class Daemon:
    name: str  # master, worker-1, worker-2, thrift
    main_class: str
    port: int  # the port that answers once it is up

    @property
    def title(self) -> str:
        return {"master": "the master", "thrift": "the Thrift server"}.get(self.name, self.name)


def daemons(settings: Settings) -> list[Daemon]:
    """In start order; stop goes in reverse."""
    workers = [
        Daemon(f"worker-{index}", WORKER_CLASS, settings.worker_ui_port(index))
        for index in range(1, WORKERS + 1)
    ]
    return [
        Daemon("master", MASTER_CLASS, settings.ports["master"]),
        *workers,
        Daemon("thrift", THRIFT_CLASS, settings.ports["thrift"]),
    ]


def _all_ports(settings: Settings) -> list[tuple[int, str]]:
    """Every port a start binds, with the variable that sets it."""
    ports = [(settings.ports[name], PORT_VARIABLES[name][0]) for name in ("master", "master_ui")]
    worker_variable = PORT_VARIABLES["worker_ui"][0]
    for index in range(1, WORKERS + 1):
        suffix = "" if index == 1 else f"+{index - 1}"
        ports.append((settings.worker_ui_port(index), worker_variable + suffix))
    ports.append((settings.ports["thrift"], PORT_VARIABLES["thrift"][0]))
    return ports


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.cluster_dir / f"{name}.pid"


def _recorded_pid(settings: Settings, name: str) -> int | None:
    try:
        return int(_pid_file(settings, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _process(pid: int | None, main_class: str) -> Any:
    """The running process with that PID if it is the daemon's JVM, else None."""
    if pid is None:
        return None
    return live_process(pid, lambda cmdline: main_class in cmdline)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVMs bind: a port left in TIME_WAIT by a stopped daemon is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _state_file(settings: Settings) -> Path:
    return settings.cluster_dir / "cluster.json"


def _read_state(settings: Settings) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_file(settings).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def _recorded_settings(settings: Settings) -> Settings:
    """The settings the running cluster was started with (its ports), if recorded."""
    state = _read_state(settings)
    if state is None:
        return settings
    return Settings(
        spark_dir=settings.spark_dir,
        ports={name: int(port) for name, port in state["ports"].items()},
        metastore_db=state["metastore_db"],
        worker_cores=settings.worker_cores,
        worker_memory=settings.worker_memory,
        thrift_cores=settings.thrift_cores,
        executor_memory=settings.executor_memory,
        thrift_memory=settings.thrift_memory,
    )


def running_daemons(settings: Settings) -> dict[str, int]:
    """name -> PID of each recorded daemon whose JVM still runs."""
    found = {}
    for daemon in daemons(settings):
        pid = _recorded_pid(settings, daemon.name)
        if _process(pid, daemon.main_class) is not None and pid is not None:
            found[daemon.name] = pid
    return found


def _is_up(settings: Settings) -> bool:
    """Every daemon's recorded JVM runs, and its port answers."""
    running = running_daemons(settings)
    return all(daemon.name in running and _answers(daemon.port) for daemon in daemons(settings))


def _write_conf(settings: Settings, found: Metastore) -> Path:
    """SPARK_CONF_DIR of the cluster: the log4j2 configuration, the metastore's
    connection (hive-site.xml, 0600: it may hold PGPASSWORD) and the defaults
    every Spark process of this cluster shares (spark-defaults.conf)."""
    conf = settings.cluster_dir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    shutil.copy(LOG4J2_PROPERTIES, conf / "log4j2.properties")
    properties = {
        **_jdo_properties(found),
        **DATANUCLEUS,
        # The schema exists (SchemaTool); never create or alter it from a session.
        "datanucleus.schema.autoCreateAll": "false",
        "hive.metastore.schema.verification": "false",
    }
    hive_site = conf / "hive-site.xml"
    hive_site.touch(mode=0o600)
    hive_site.chmod(0o600)
    hive_site.write_text(
        '<?xml version="1.0"?>\n<configuration>\n'
        + "".join(
            f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
            for key, value in properties.items()
        )
        + "</configuration>\n"
    )
    jars = ":".join(map(str, checked_jars()))
    defaults = {
        "spark.sql.warehouse.dir": str(settings.cluster_dir / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        **iceberg_conf(settings, found),
        "spark.sql.session.timeZone": "UTC",
        # Iceberg's runtime and the JDBC driver in every driver JVM, and Iceberg's
        # runtime (its readers and writers, S3FileIO) in every executor: this
        # machine's paths, as every daemon runs here (a multi-machine cluster
        # would ship them with spark.jars).
        "spark.driver.extraClassPath": jars,
        "spark.executor.extraClassPath": jars,
        "spark.driver.host": HOST,
        "spark.driver.bindAddress": HOST,
        # A taken port is an error, not a silent move to the next one.
        "spark.port.maxRetries": "0",
        "spark.ui.showConsoleProgress": "false",
    }
    # 0600: the catalog's JDBC password (PGPASSWORD), when there is one, is here.
    spark_defaults = conf / "spark-defaults.conf"
    spark_defaults.touch(mode=0o600)
    spark_defaults.chmod(0o600)
    spark_defaults.write_text("".join(f"{key} {value}\n" for key, value in defaults.items()))
    return conf


def iceberg_conf(settings: Settings, found: Metastore) -> dict[str, str]:
    """The Iceberg catalog every Spark process of the cluster uses, as Spark's
    default catalog: the JDBC catalog in PostgreSQL that the loader writes the
    landing tables into (lake_catalog.py), so that the models' tables and the
    landing tables are named in one place. Not Iceberg's SparkSessionCatalog in
    place of spark_catalog: that one lists the tables of Spark's Hive catalog,
    so dbt-spark (show table extended) would not see the JDBC catalog's."""
    prefix = f"spark.sql.catalog.{lake_catalog.CATALOG_NAME}"
    conf = {
        # Iceberg's SQL: views in its catalog, and its procedures.
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        # Each Thrift session (each dbt connection) opens the catalog anew, with
        # a pool that is never closed: one connection per client, and that
        # pool's connections were kept open until PostgreSQL refused clients.
        # So one connection per pool, and the server ends it once idle for
        # five seconds (idle_session_timeout, these connections only). A minute
        # was too long: a dbt build opens dozens of sessions a minute, and the
        # clean-clone CI ran the embedded server out of its 100 clients.
        f"{prefix}.uri": _with_options(found.catalog_jdbc_url, "-c idle_session_timeout=5s"),
        f"{prefix}.clients": "1",
        # A statement sent as the server ends the session reads its goodbye
        # (SQLSTATE 57P05): reconnect and run it again (docs/spark.md).
        f"{prefix}.retryable_status_codes": "57P05",
        f"{prefix}.jdbc.user": found.user,
        # V1: the catalog's table has a column saying table or view, which dbt's
        # views need; Iceberg adds it to a catalog pyiceberg created (its rows,
        # without one, are tables).
        f"{prefix}.jdbc.schema-version": "V1",
        # The tables Spark creates (dbt's models): SPARK_DIR/cluster/warehouse/<schema>/<table>.
        f"{prefix}.warehouse": (settings.cluster_dir / "warehouse").as_uri(),
        # No table cache in the Spark processes (Iceberg keeps one, 30 s by
        # default): a statement must see the landing tables as the loader last
        # committed them, and each one's latest commit, not a snapshot a
        # reader saw before.
        f"{prefix}.cache-enabled": "false",
        # Files by their scheme: local (file:) or object storage (s3:, S3FileIO).
        f"{prefix}.io-impl": "org.apache.iceberg.io.ResolvingFileIO",
        "spark.sql.defaultCatalog": lake_catalog.CATALOG_NAME,
    }
    if found.password:
        conf[f"{prefix}.jdbc.password"] = found.password
    # A lake in object storage: the S3 source's variables (AWS_* credentials and
    # region reach S3FileIO through the daemons' environment).
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf[f"{prefix}.s3.endpoint"] = endpoint
        conf[f"{prefix}.s3.path-style-access"] = "true"
    return conf


def _daemon_env(settings: Settings, conf: Path) -> dict[str, str]:
    tmp = settings.cluster_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SPARK_HOME": str(pyspark_home()),
        "SPARK_CONF_DIR": str(conf),
        "SPARK_LOCAL_IP": HOST,
        "SPARK_LOCAL_DIRS": str(tmp),
        # The master and workers read these (spark-class, for daemons only).
        # The master's REST submission server is off: nothing here submits
        # through it, and its fixed port (6066) would be taken by a second
        # cluster on the machine, whose master then never answers (measured:
        # the test session's cluster beside `make spark-start`'s).
        "SPARK_DAEMON_JAVA_OPTS": (
            f"-Djava.io.tmpdir={tmp} -Dspark.port.maxRetries=0 -Dspark.master.rest.enabled=false"
        ),
    }
    # The master and workers must not pick up a PYSPARK_* or a session's settings.
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    return env


def _command(settings: Settings, daemon: Daemon) -> list[str]:
    bin_dir = pyspark_home() / "bin"
    master_url = f"spark://{HOST}:{settings.ports['master']}"
    if daemon.main_class == MASTER_CLASS:
        return [
            *[str(bin_dir / "spark-class"), MASTER_CLASS, "--host", HOST],
            *["--port", str(settings.ports["master"])],
            *["--webui-port", str(settings.ports["master_ui"])],
        ]
    if daemon.main_class == WORKER_CLASS:
        work = settings.cluster_dir / "work" / daemon.name
        work.mkdir(parents=True, exist_ok=True)
        return [
            *[str(bin_dir / "spark-class"), WORKER_CLASS, "--host", HOST],
            *["--cores", str(settings.worker_cores), "--memory", settings.worker_memory],
            *["--work-dir", str(work), "--webui-port", str(daemon.port), master_url],
        ]
    confs = {
        "spark.cores.max": str(settings.thrift_cores),
        "spark.executor.memory": settings.executor_memory,
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={settings.cluster_dir / 'tmp'}",
        # Its port would be one more to configure; the master's UI shows the application.
        "spark.ui.enabled": "false",
    }
    return [
        str(bin_dir / "spark-submit"),
        "--master",
        master_url,
        "--name",
        "Sparkify Thrift server",
        "--class",
        THRIFT_CLASS,
        "--driver-memory",
        settings.thrift_memory,
        *[item for key, value in confs.items() for item in ("--conf", f"{key}={value}")],
        "spark-internal",
        "--hiveconf",
        f"hive.server2.thrift.bind.host={HOST}",
        "--hiveconf",
        f"hive.server2.thrift.port={daemon.port}",
    ]


def _launch(settings: Settings, daemon: Daemon, env: dict[str, str]) -> subprocess.Popen[bytes]:
    logs = settings.cluster_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{daemon.name}.log", "ab") as out:
        process = subprocess.Popen(
            _command(settings, daemon),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=settings.cluster_dir,
            # Its own session: a Ctrl-C in the shell that started it does not reach
            # it; the cluster runs until `stop`. spark-class execs the JVM, so this
            # PID is the JVM's.
            start_new_session=True,
        )
    _pid_file(settings, daemon.name).write_text(f"{process.pid}\n")
    return process


def _wait_until_up(
    settings: Settings, daemon: Daemon, process: subprocess.Popen[bytes], deadline: float
) -> None:
    log_file = settings.cluster_dir / "logs" / f"{daemon.name}.log"
    while time.monotonic() < deadline:
        if _answers(daemon.port):
            return
        # Our own child: poll() sees its death without reading /proc (whose
        # cmdline is briefly empty while spark-class execs the JVM).
        if process.poll() is not None:
            raise SparkClusterError(
                f"{daemon.title} exited at start: {_last_error(log_file)}; see {log_file}"
            )
        time.sleep(0.3)
    raise SparkClusterError(
        f"{daemon.title} did not answer on port {daemon.port} within "
        f"{START_TIMEOUT:.0f} s; see {log_file}"
    )


def _last_error(log_file: Path) -> str:
    """The log's most telling line: its last error, else its last line."""
    try:
        lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines()]
    except FileNotFoundError:
        return "no log"
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if " ERROR " in line or "Exception" in line or line.startswith("Error"):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


@contextlib.contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    """Hold the cluster folder's lock: two starts at once (make -j, two shells)
    would each launch daemons and overwrite each other's PID files."""
    settings.cluster_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.cluster_dir / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another start or stop of this cluster to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def start(settings: Settings | None = None) -> dict[str, str]:
    """Start the cluster unless it runs; return its client variables (client_env)."""
    settings = settings or settings_from_env()
    with _one_at_a_time(settings):
        return _start(settings)


def _start(settings: Settings) -> dict[str, str]:
    recorded = _recorded_settings(settings)
    if _is_up(recorded):
        log.info("reusing the Spark cluster already running in %s", recorded.cluster_dir)
        return client_env(recorded)
    if running_daemons(recorded):
        log.info("a part of the cluster runs without the rest: stopping it first")
        _stop(recorded)
    for port, variable in _all_ports(settings):
        if not _port_is_free(port):
            raise SparkClusterError(
                f"port {port} on {HOST} is in use: stop what holds it, or set {variable} "
                "to a free port"
            )
    pyspark_home()
    checked_jars()
    settings.cluster_dir.mkdir(parents=True, exist_ok=True)
    found = metastore(settings)
    conf = _write_conf(settings, found)
    env = _daemon_env(settings, conf)
    _state_file(settings).unlink(missing_ok=True)
    began = time.monotonic()
    try:
        for daemon in daemons(settings):
            log.info("starting %s", daemon.title)
            process = _launch(settings, daemon, env)
            _wait_until_up(settings, daemon, process, time.monotonic() + START_TIMEOUT)
    except BaseException:
        # A failed (or interrupted) start leaves nothing running.
        _stop(settings)
        raise
    state = {
        "ports": settings.ports,
        "metastore_db": settings.metastore_db,
        "metastore": found.described,
        "started_in_s": round(time.monotonic() - began, 1),
    }
    _state_file(settings).write_text(json.dumps(state, indent=2) + "\n")
    log.info("the Spark cluster is up in %.0f s", state["started_in_s"])
    return client_env(settings)


def stop(settings: Settings | None = None) -> bool:
    """Stop every recorded daemon by its PID (SIGTERM, then SIGKILL), and the
    executors its workers started. Returns whether anything was running."""
    settings = settings or settings_from_env()
    if not settings.cluster_dir.is_dir():
        return False  # never started here: nothing to stop, nothing to create
    with _one_at_a_time(settings):
        return _stop(_recorded_settings(settings))


def _stop(settings: Settings) -> bool:
    import psutil

    stopped_any = False
    for daemon in reversed(daemons(settings)):
        pid = _recorded_pid(settings, daemon.name)
        process = _process(pid, daemon.main_class)
        if process is not None:
            stopped_any = True
            # Executors are the worker's children; they must not outlive it.
            family = [process, *process.children(recursive=True)]
            log.info("stopping %s (pid %d)", daemon.title, process.pid)
            for member in family:
                with contextlib.suppress(psutil.Error):
                    member.send_signal(signal.SIGTERM)
            _, alive = psutil.wait_procs(family, timeout=STOP_TIMEOUT)
            for member in alive:
                log.info("%s did not stop on SIGTERM: killing pid %d", daemon.title, member.pid)
                with contextlib.suppress(psutil.Error):
                    member.kill()
            psutil.wait_procs(alive, timeout=10)
        _pid_file(settings, daemon.name).unlink(missing_ok=True)
    _state_file(settings).unlink(missing_ok=True)
    return stopped_any


def status(settings: Settings | None = None) -> str:
    settings = _recorded_settings(settings or settings_from_env())
    running = running_daemons(settings)
    if not running:
        return f"stopped (cluster folder {settings.cluster_dir}): 'make spark-start' starts it"
    missing = [d.name for d in daemons(settings) if d.name not in running]
    if missing or not _is_up(settings):
        return (
            f"partly running ({', '.join(f'{n} pid {p}' for n, p in running.items())}; "
            f"not: {', '.join(missing) or 'answering'}): "
            "run 'make spark-stop', then 'make spark-start'"
        )
    state = _read_state(settings) or {}
    workers = ", ".join(
        str(running[d.name]) for d in daemons(settings) if d.main_class == WORKER_CLASS
    )
    return (
        f"running: master spark://{HOST}:{settings.ports['master']} (pid {running['master']}, "
        f"UI http://{HOST}:{settings.ports['master_ui']}/), {WORKERS} workers (pids {workers}), "
        f"Thrift server {HOST}:{settings.ports['thrift']} (pid {running['thrift']}); "
        f"catalog: {state.get('metastore', settings.metastore_db)}; "
        f"logs: {settings.cluster_dir / 'logs'}"
    )


def client_env(settings: Settings) -> dict[str, str]:
    """What a client of the cluster needs: the Thrift server, the master, and the
    SPARK_CONF_DIR that gives any Spark process the same catalog and warehouse."""
    return {
        "SPARKIFY_SPARK_THRIFT_HOST": HOST,
        "SPARKIFY_SPARK_THRIFT_PORT": str(settings.ports["thrift"]),
        "SPARKIFY_SPARK_MASTER_URL": f"spark://{HOST}:{settings.ports['master']}",
        "SPARKIFY_SPARK_MASTER_UI": f"http://{HOST}:{settings.ports['master_ui']}",
        "SPARK_CONF_DIR": str(settings.cluster_dir / "conf"),
    }


def master_json(settings: Settings | None = None) -> dict[str, Any]:
    """The master's own view of the cluster (workers, applications, cores)."""
    settings = _recorded_settings(settings or settings_from_env())
    url = f"http://{HOST}:{settings.ports['master_ui']}/json/"
    with urllib.request.urlopen(url, timeout=10) as response:
        found: dict[str, Any] = json.load(response)
    return found


def build_parser() -> argparse.ArgumentParser:
    variables = "\n".join(
        f"  {variable:32} default {default}" for variable, default in PORT_VARIABLES.values()
    )
    parser = argparse.ArgumentParser(
        prog="sparkify-spark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m sparkify.spark_cluster start    # start or reuse; print its variables\n"
            '  eval "$(python -m sparkify.spark_cluster env)"  # point this shell at it\n'
            "  python -m sparkify.spark_cluster status\n"
            "  python -m sparkify.spark_cluster stop\n"
            f"\nports (all on {HOST}; worker N's web UI is SPARKIFY_SPARK_WORKER_UI_PORT+N-1):\n"
            f"{variables}\n"
            "\nexit codes: 0 ok, 1 the cluster could not be started or stopped, 2 usage"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start", help="start the cluster unless it runs; print its variables")
    commands.add_parser("env", help="like start, but print shell 'export' lines for eval")
    commands.add_parser("stop", help="stop the cluster's daemons by their recorded PIDs")
    commands.add_parser("status", help="say whether the cluster runs, in one line")
    commands.add_parser("jars", help="fetch the pinned jars (spark-jars.txt) with mvn, once")
    return parser


def free_ports() -> dict[str, int]:
    """Free ports for a second cluster beside the default one (the tests', the
    benchmark's), as the variables start() reads; the two workers' web UIs need
    two in a row. Taken below the kernel's ephemeral range, where no outgoing
    connection and no bind to port 0 of another program lands: a daemon stopped
    and started again (the fault tests) finds its port still free, however busy
    the machine (a port picked by bind(0) was taken by a client's connection
    while its worker was down)."""
    first_ephemeral = _first_ephemeral_port()
    chooser = random.SystemRandom()
    while True:
        base = chooser.randrange(FREE_PORTS_FROM, first_ephemeral - 5)
        worker_ui, _, master, master_ui, thrift = range(base, base + 5)
        if all(_port_is_free(port) for port in range(base, base + 5)):
            return {
                "SPARKIFY_SPARK_MASTER_PORT": master,
                "SPARKIFY_SPARK_MASTER_UI_PORT": master_ui,
                "SPARKIFY_SPARK_WORKER_UI_PORT": worker_ui,
                "SPARKIFY_SPARK_THRIFT_PORT": thrift,
            }


# Where free_ports() looks: above the well-known services, below the ephemeral range.
FREE_PORTS_FROM = 20000


def _first_ephemeral_port() -> int:
    """The low end of Linux's ip_local_port_range (32768 by default, as elsewhere)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32768


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="spark_cluster: %(message)s", stream=sys.stderr)
    try:
        if args.command == "start":
            for key, value in start().items():
                print(f"{key}={value}")
        elif args.command == "env":
            for key, value in start().items():
                print(f"export {key}={shlex.quote(value)}")
        elif args.command == "stop":
            print("stopped" if stop() else "not running")
        elif args.command == "status":
            print(status())
        elif args.command == "jars":
            for path in fetch_jars():
                print(path)
    except SparkClusterError as exc:
        print(f"spark_cluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spark_cluster: interrupted (nothing left running)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
