"""The embedded server honours PGDATABASE: two feeds sit side by side in two databases.

The commands run exactly as the make targets run them, through
`src/sparkify/embedded_pg.py exec -- …` with PGHOST unset, so the database each one
uses is the one PGDATABASE names, created by embedded_pg.py when it is missing.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from helpers import REPO_ROOT, admin_conninfo, connect, dbt_invocation, generate_feed, scalar

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

EMBEDDED_PG = [sys.executable, "-m", "sparkify.embedded_pg"]
# Two different feeds: other seeds, sizes and months.
FEED_A = ("--days", "2", "--users", "5", "--songs", "12", "--events-per-day", "40", "--seed", "1")
FEED_B = (
    *("--days", "3", "--users", "7", "--songs", "17", "--events-per-day", "50"),
    *("--seed", "2", "--start-date", "2018-12-01"),
)


@pytest.fixture
def new_database_names(server_env: dict[str, str]) -> Iterator[list[str]]:
    """Two database names that do not exist yet; whatever was created is dropped after."""
    names = [f"sparkify_pytest_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    yield names
    with psycopg.connect(admin_conninfo(server_env), autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def through_embedded_pg(
    env: dict[str, str], *command: str | Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EMBEDDED_PG, "exec", "--", *map(str, command)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )


def database_exists(server_env: dict[str, str], name: str) -> bool:
    query = "select exists (select from pg_database where datname = %s)"
    with psycopg.connect(admin_conninfo(server_env)) as conn:
        return bool(scalar(conn, query, [name]))


def feed_files(feed: Path) -> dict[str, str]:
    """source_file -> sha256 of every data file, as the loader names them."""
    return {
        path.relative_to(feed).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for kind in ("song_data", "log_data")
        for path in sorted((feed / kind).rglob("*.json"))
    }


def event_lines(feed: Path) -> int:
    return sum(
        1
        for path in (feed / "log_data").rglob("*.json")
        for line in path.read_bytes().splitlines()
        if line.strip()
    )


def test_pgdatabase_keeps_two_feeds_apart(embedded_env, new_database_names, server_env, tmp_path):
    feeds = {name: tmp_path / f"feed_{i}" for i, name in enumerate(new_database_names)}
    for (name, feed), options in zip(feeds.items(), (FEED_A, FEED_B), strict=True):
        generate_feed(feed, *options)
        assert not database_exists(server_env, name)

        # What `PGDATABASE=... make load` runs: the database is created, then loaded.
        env = {**embedded_env, "PGDATABASE": name}
        loaded = through_embedded_pg(
            env, sys.executable, "-m", "sparkify.loader", "--data-dir", feed
        )
        assert loaded.returncode == 0, loaded.stderr
        assert f"creating database {name}" in loaded.stderr
        assert database_exists(server_env, name)

        # `embedded_pg.py env` (what a SQL client is pointed with) names the same database.
        printed = subprocess.run([*EMBEDDED_PG, "env"], env=env, capture_output=True, text=True)
        assert f"export PGDATABASE={name}\n" in printed.stdout

    a, b = new_database_names
    assert feed_files(feeds[a]) != feed_files(feeds[b])
    for name, feed in feeds.items():
        db = {**server_env, "PGDATABASE": name}
        with connect(db) as conn:
            manifest = dict(
                conn.execute("select source_file, checksum from raw.load_manifest").fetchall()
            )
            events = conn.execute("select count(*) from raw.events").fetchone()[0]
            songs = conn.execute("select count(*) from raw.songs").fetchone()[0]
        # Each database holds its own feed: every file of it, and nothing of the other.
        assert manifest == feed_files(feed), name
        assert events == event_lines(feed)
        assert songs == len(list((feed / "song_data").rglob("*.json")))

    # dbt, also through PGDATABASE, builds each warehouse from its own feed only.
    for name, feed in feeds.items():
        command, dbt_env = dbt_invocation({**embedded_env, "PGDATABASE": name}, tmp_path, "build")
        built = through_embedded_pg(dbt_env, *command)
        assert built.returncode == 0, built.stdout[-4000:]
        with connect({**server_env, "PGDATABASE": name}) as conn:
            mart_songs = conn.execute("select count(*) from analytics.songs").fetchone()[0]
        assert mart_songs == len(list((feed / "song_data").rglob("*.json"))), name
