"""The loader, transformer and analyst roles of a test's own (a pytest plugin).

Roles are cluster-wide: each test that asks for `roles` gets names of its own,
made by src/sparkify/roles.py as a user runs it, and dropped afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from helpers import connect

JOBS = ("loader", "transformer", "analyst")


def run_setup_roles(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkify.roles"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def roles(db_env: dict[str, str]) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(role name by job, environment naming them), roles dropped after the test."""
    tag = uuid.uuid4().hex[:8]
    names = {job: f"sparkify_t{tag}_{job}" for job in JOBS}
    env = {**db_env, **{f"SPARKIFY_{job.upper()}_ROLE": name for job, name in names.items()}}
    yield names, env
    with connect(db_env) as conn:
        conn.autocommit = True
        existing = {r[0] for r in conn.execute("select rolname from pg_roles")}
        present = [sql.Identifier(name) for name in names.values() if name in existing]
        # One role at a time: DROP OWNED BY a, b trips over a default ACL naming both.
        for ident in present:
            conn.execute(sql.SQL("drop owned by {} cascade").format(ident))
        for ident in present:
            conn.execute(sql.SQL("drop role {}").format(ident))


def as_role(env: dict[str, str], name: str) -> dict[str, str]:
    return {**env, "PGUSER": name}
