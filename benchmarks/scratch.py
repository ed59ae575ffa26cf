"""Scratch space: the gitignored folder for generated feeds and dbt output, the
scratch databases each run makes and drops, and the checks on their tables."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Query

from benchmarks.measuring import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
SCRATCH = RESULTS / "tmp"  # gitignored: generated feeds and dbt output


def env_for(db: str) -> dict[str, str]:
    """The environment a script under test gets: the PG* variables, pointed at db."""
    return {**os.environ, "PGDATABASE": db}


def connect_args(env: dict[str, str]) -> dict[str, Any]:
    """psycopg.connect's arguments for the server and database env names."""
    keys = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGDATABASE": "dbname"}
    return {key: env[var] for var, key in keys.items() if env.get(var)}


def scalar(conn: psycopg.Connection[Any], query: Query) -> Any:
    """The one value a query returns."""
    row = conn.execute(query).fetchone()
    if row is None:
        raise SystemExit(f"bench: no row from {query!r}")
    return row[0]


def server_version() -> str:
    with psycopg.connect(autocommit=True) as conn:
        return str(scalar(conn, "show server_version"))


def truncate(env: dict[str, str], table: str) -> None:
    with psycopg.connect(**connect_args(env), autocommit=True) as conn:
        schema, name = table.split(".")
        conn.execute(sql.SQL("truncate {}").format(sql.Identifier(schema, name)))


def check_count(env: dict[str, str], table: str, expected: int) -> None:
    """Every line landed: a figure for a partial load would flatter it."""
    schema, name = table.split(".")
    with psycopg.connect(**connect_args(env)) as conn:
        got = scalar(conn, sql.SQL("select count(*) from {}").format(sql.Identifier(schema, name)))
    if got != expected:
        raise SystemExit(f"bench: {table} has {got} rows, expected {expected}")


class ScratchDatabases:
    """Databases named after the run, dropped at the end (on a kill too)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.names: list[str] = []

    def new(self, label: str) -> str:
        name = f"sparkify_bench_{label}_{self.run_id}"
        with psycopg.connect(**connect_args(env_for("postgres")), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        self.names.append(name)
        return name

    def drop(self, name: str) -> None:
        with psycopg.connect(**connect_args(env_for("postgres")), autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            with contextlib.suppress(psycopg.Error):
                self.drop(name)
