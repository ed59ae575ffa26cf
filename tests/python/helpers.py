"""What the tests share that is not a fixture: the repository's paths, connecting to a
test database, and running the project's CLIs (loader, generator, dbt) as a user would.

The fixtures (a server, a throwaway database) stay in conftest.py; tests import these
by name (`from helpers import connect`), as pytest puts tests/python on the path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params

from sparkify.checkout import REPO_ROOT

UDACITY_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "udacity-sample"
VENV_BIN = Path(sys.executable).parent


def throwaway_database(server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A new, empty database on the server: its environment, then the database dropped."""
    name = f"sparkify_pytest_{uuid.uuid4().hex[:12]}"
    admin = admin_conninfo(server_env)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield {**server_env, "PGDATABASE": name}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def admin_conninfo(env: dict[str, str]) -> str:
    # Connect to the maintenance database of the same server to create/drop ours.
    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGPASSWORD": "password"}
    parts = [f"{key}={env[var]}" for var, key in keys.items() if env.get(var)]
    return " ".join([*parts, "dbname=postgres"])


def connect(env: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(
        admin_conninfo(env).replace("dbname=postgres", f"dbname={env['PGDATABASE']}")
    )


def scalar(
    conn: psycopg.Connection[Any], query: str | sql.SQL | sql.Composed, params: Params | None = None
) -> Any:
    """The first value of the one row a query returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r}"
    return row[0]


def one_row(
    conn: psycopg.Connection[Any], query: str | sql.SQL | sql.Composed, params: Params | None = None
) -> tuple[Any, ...]:
    """The one row a query returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query!r}"
    return row


def run_loader(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `python ingest/load_raw.py` as a user would, and capture what it says."""
    return subprocess.run(
        [sys.executable, "-m", "sparkify.loader", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def generate_feed(out: Path, *options: str) -> None:
    """Write a feed with the project's own generator, run as a user would."""
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "sparkify.generator",
            "--out",
            str(out),
            *options,
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stderr


def dbt_invocation(
    env: dict[str, str], tmp_path: Path, *args: str
) -> tuple[list[str], dict[str, str]]:
    """The dbt command and environment: the example profile copied unchanged, and a
    target and log folder of the test's own. On PostgreSQL a build leaves out the
    models' unit tests: they read fixtures, not the test's data, and each pass of
    make test runs them in its `dbt --warn-error build` (Spark's in test_parity)."""
    profiles = tmp_path / "dbt-profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "profiles.yml.example", profiles / "profiles.yml")
    command = [
        str(VENV_BIN / "dbt"),
        *args,
        "--project-dir",
        str(REPO_ROOT),
        "--target-path",
        str(tmp_path / "dbt-target"),
        "--log-path",
        str(tmp_path / "dbt-logs"),
    ]
    on_spark = "spark" in args  # --target spark
    unit_tests = {} if on_spark else {"DBT_EXCLUDE_RESOURCE_TYPES": "unit_test"}
    return command, {**env, **unit_tests, "DBT_PROFILES_DIR": str(profiles), "DO_NOT_TRACK": "1"}


def run_dbt(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run dbt (see dbt_invocation) and wait for it."""
    command, dbt_env = dbt_invocation(env, tmp_path, *args)
    return subprocess.run(
        command,
        env=dbt_env,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=REPO_ROOT,
    )


def dbt_results(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The last dbt command's run_results.json (see dbt_invocation), by node name:
    status ("success", "warn", "error", ...), failures (a test's row count) and
    message, as dbt wrote them."""
    written = json.loads((tmp_path / "dbt-target" / "run_results.json").read_text())
    return {_node_name(result["unique_id"]): result for result in written["results"]}


def _node_name(unique_id: str) -> str:
    """`songplays` for model.sparkify.songplays, a test's name without its hash
    (test.sparkify.<name>.<hash>), `<model>.<test>` for a unit test."""
    kind, _, *name = unique_id.split(".")
    return ".".join(name[:2]) if kind == "unit_test" else name[0]


def load_accounts(env: dict[str, str]) -> dict[int, tuple[tuple, tuple]]:
    """Per load id: (what raw.loads says, what the raw tables hold now), each as
    (source_kind, file_count, replaced_file_count, row_count, reject_count). A load
    whose file was later replaced holds less now than it says it landed."""
    with connect(env) as conn:
        rows = conn.execute(
            """
            with held as (
                select load_id, count(*) as n from raw.events group by 1
                union all
                select load_id, count(*) from raw.songs group by 1
            ),
            rejected as (select load_id, count(*) as n from raw.rejects group by 1),
            files as (
                select load_id, count(*) as n, min(source_kind) as kind,
                    count(*) filter (where first_loaded_at < loaded_at) as replaced
                from raw.load_manifest group by 1
            ),
            ids as (
                select load_id from raw.loads
                union select load_id from held
                union select load_id from rejected
                union select load_id from files
            )
            select
                ids.load_id,
                loads.source_kind, loads.file_count, loads.replaced_file_count,
                loads.row_count, loads.reject_count,
                files.kind, coalesce(files.n, 0), coalesce(files.replaced, 0),
                coalesce((select sum(n) from held where held.load_id = ids.load_id), 0),
                coalesce(rejected.n, 0)
            from ids
            left join raw.loads as loads on loads.load_id = ids.load_id
            left join files on files.load_id = ids.load_id
            left join rejected on rejected.load_id = ids.load_id
            order by 1
            """
        ).fetchall()
    return {row[0]: (tuple(row[1:6]), tuple(row[6:11])) for row in rows}


def assert_loads_match(env: dict[str, str], *, superseded: tuple[int, ...] = ()) -> None:
    """The loads contract: every load id on a raw row, reject or manifest entry is
    in raw.loads; every file's rows and rejects carry its manifest entry's load id;
    and each load's counts are what the raw tables hold for it. A load in
    `superseded` had files replaced by a later load: it may hold less than it
    landed, never more. A prune load lands nothing and counts the files it
    removed as replaced."""
    accounts = load_accounts(env)
    for load_id, (said, held) in accounts.items():
        assert said[1] is not None, f"load {load_id} is on raw rows but not in raw.loads"
        if said[1] == 0 and said[2] > 0:  # a prune (--prune): it removed files, landed none
            assert said[3:] == (0, 0) and held == (None, 0, 0, 0, 0), (load_id, said, held)
        elif load_id in superseded:
            assert all(h <= s for h, s in zip(held[1:], said[1:], strict=True)), (load_id, said)
        elif load_id == 0:  # rows landed before load ids: no kind, nothing replaced
            assert said == (None, held[1], 0, held[3], held[4]), (said, held)
        else:
            assert said == held, f"load {load_id}: raw.loads says {said}, raw holds {held}"
    with connect(env) as conn:
        astray = conn.execute(
            """
            select source_file, rows.load_id, m.load_id
            from (
                select source_file, load_id from raw.events
                union select source_file, load_id from raw.songs
                union select source_file, load_id from raw.rejects
            ) as rows
            left join raw.load_manifest as m using (source_file)
            where m.load_id is distinct from rows.load_id
            """
        ).fetchall()
    assert astray == [], "rows whose load is not their file's manifest load"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listened on a moment ago (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_lines(path: Path, lines: list[bytes], *, trailing_newline: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    path.write_bytes(data)
    return path


def build(env: dict[str, str], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """dbt build, which must succeed."""
    result = run_dbt(env, tmp_path, "build", *extra)
    assert result.returncode == 0, result.stdout[-4000:]
    return result


# Every schema dbt builds tables in; audit.consumed_loads is bookkeeping, not a model.
BUILT_SCHEMAS = ("staging", "analytics", "reports", "audit")
MARTS = ("analytics",)  # the star schema: fact, dimensions, users_history, dates


def warehouse_fingerprint(
    env: dict[str, str], schemas: tuple[str, ...] = BUILT_SCHEMAS, *, load_times: bool = True
) -> dict[str, tuple[int, str]]:
    """Row count and a hash of all rows of every table dbt builds in `schemas`, by
    "schema.table": the one way the tests tell two warehouses apart. Without
    load_times, the columns that say when a row landed (`*_loaded_at`) are left
    out: two warehouses built from one feed at different times, or a day
    delivered again, then hash the same."""
    with connect(env) as conn:
        tables = conn.execute(
            "select c.table_schema, c.table_name, "
            "array_agg(c.column_name::text order by c.ordinal_position) "
            "from information_schema.columns as c join information_schema.tables as t "
            "using (table_schema, table_name) "
            "where c.table_schema = any(%s) and t.table_type = 'BASE TABLE' "
            "and c.table_name <> 'consumed_loads' group by 1, 2 order by 1, 2",
            [list(schemas)],
        ).fetchall()
        assert tables, f"no table in {schemas}"
        fingerprint = {}
        for schema, table, columns in tables:
            if not load_times:
                columns = [c for c in columns if not c.endswith("_loaded_at")]
            query = sql.SQL(
                "select count(*), md5(coalesce(string_agg(r::text, '|' order by r::text), '')) "
                "from (select {columns} from {table}) as r"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                table=sql.Identifier(schema, table),
            )
            fingerprint[f"{schema}.{table}"] = one_row(conn, query)
        return fingerprint


def assert_equal_to_full_refresh(env: dict[str, str], tmp_path: Path) -> None:
    """A plain build, then its fingerprint against a full refresh of the same raw data."""
    build(env, tmp_path)
    incremental = warehouse_fingerprint(env)
    build(env, tmp_path, "--full-refresh")
    full = warehouse_fingerprint(env)
    differing = sorted(name for name in full if incremental.get(name) != full[name])
    assert differing == [], f"differ from a full refresh: {differing}"
    assert set(incremental) == set(full)


def plain_run_marts(server_env: dict[str, str], feed: Path, tmp_path: Path) -> dict:
    """The marts of the feed loaded and built by hand (load_raw.py, dbt build) into
    a throwaway database: what a run of any other kind must equal."""
    marts: dict = {}
    for env in throwaway_database(server_env):  # dropped once the loop ends
        loaded = run_loader(env, "--data-dir", feed)
        assert loaded.returncode == 0, loaded.stderr
        build(env, tmp_path)
        marts = warehouse_fingerprint(env, MARTS, load_times=False)
    return marts


# Generous: a deadline for a state to be reached, never a timing assertion.
WAIT_SECONDS = 300


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll until condition() is true; its value. A deadline, not a measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start_loader(env: dict[str, str], stderr: Path, *args: str | Path) -> subprocess.Popen:
    """The loader in a session (and process group) of its own, as a scheduler would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "sparkify.loader", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr.open("w"),
        text=True,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a process started in a session of its own, and its children."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def landed(env: dict[str, str]) -> dict[str, list[tuple]]:
    """What raw holds, without load ids and times (they differ from load to load):
    the one way the tests tell two landings apart."""
    with connect(env) as conn:
        return {
            table: conn.execute(
                f"select source_file, line_number, {payload} from raw.{table} order by 1, 2"
            ).fetchall()
            for table, payload in (
                ("events", "payload::text"),
                ("songs", "payload::text"),
                ("rejects", "line, reason, detail"),
            )
        }


def manifest_rows(env: dict[str, str]) -> list[tuple]:
    """raw.load_manifest without load ids and times; a file's size and mtime
    are the source's (a folder and a bucket differ in them)."""
    with connect(env) as conn:
        return conn.execute(
            "select source_file, source_kind, checksum, size_bytes, mtime_ns, "
            "row_count, reject_count from raw.load_manifest order by 1"
        ).fetchall()


def load_json(env: dict[str, str], *args: str | Path) -> tuple[int, dict, str]:
    """Run the loader with --json: (exit code, summary or {}, stderr)."""
    result = run_loader(env, "--json", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, loader_summary(result.stdout), result.stderr


def loader_summary(stdout: str) -> dict[str, Any]:
    """The loader's --json summary: the last line of its stdout, one JSON object;
    {} when it printed none (it stopped before its summary)."""
    lines = stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def deliver(source: Path, target: Path, log_files: list[Path]) -> None:
    """Copy the song files and the given day files into a delivery folder."""
    if not (target / "song_data").exists():
        shutil.copytree(source / "song_data", target / "song_data")
    for path in log_files:
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, destination)
