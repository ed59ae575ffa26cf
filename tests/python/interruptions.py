"""Faults made to happen at a known point of a load or a build, not after a guess.

A connection holds an uncommitted row with the key a loader will insert, so the
loader's COPY waits on it mid-load; a test waits until PostgreSQL shows the
wait (pg_blocking_pids), then strikes. And what a struck load must leave.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import REPO_ROOT, connect, dbt_invocation


class Blocker:
    """A connection holding an uncommitted row that the loader will also insert."""

    def __init__(self, env: dict[str, str], source_file: str):
        self.env = env
        self.conn = connect(env)
        self.pid = self.conn.info.backend_pid
        self.conn.execute(
            "insert into raw.events (source_file, line_number, payload, load_id) "
            "values (%s, 1, '{}', 0)",
            [source_file],
        )

    def blocked_pids(self) -> list[int]:
        """Backends of other sessions that wait for this one."""
        with connect(self.env) as conn:
            return [
                pid
                for (pid,) in conn.execute(
                    "select pid from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
                    [self.pid],
                )
            ]

    def release(self) -> None:
        if not self.conn.closed:
            try:
                self.conn.rollback()
            finally:
                self.conn.close()


def blocking_pids(env: dict[str, str]) -> set[int]:
    """Backends that some other backend waits for."""
    with connect(env) as conn:
        return {
            pid
            for (pids,) in conn.execute("select pg_blocking_pids(pid) from pg_stat_activity")
            for pid in pids
        }


def start_dbt(
    env: dict[str, str], tmp_path: Path, *args: str, log_path: Path | None = None
) -> subprocess.Popen:
    """dbt with `args` (e.g. "build") in a session of its own, its output
    dropped: a build to interrupt while it runs (kill_group). Its debug log goes
    to `log_path` when given: a log to watch that no earlier build wrote."""
    command, dbt_env = dbt_invocation(env, tmp_path, *args)
    if log_path is not None:
        command[command.index("--log-path") + 1] = str(log_path)
    return subprocess.Popen(
        command,
        env=dbt_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        start_new_session=True,
    )


def assert_nothing_half_loaded(env: dict[str, str]) -> None:
    """Every file is either absent or complete: rows and rejects match its manifest row."""
    with connect(env) as conn:
        mismatched = conn.execute(
            """
            with landed as (
                select source_file, count(*) as n from raw.events group by 1
                union all select source_file, count(*) from raw.songs group by 1
            ),
            rejected as (select source_file, count(*) as n from raw.rejects group by 1),
            files as (
                select source_file from landed union select source_file from rejected
            )
            select files.source_file, m.row_count, m.reject_count, l.n, r.n
            from files
            left join raw.load_manifest as m using (source_file)
            left join (select source_file, sum(n) as n from landed group by 1) as l
                using (source_file)
            left join rejected as r using (source_file)
            where m.source_file is null
                or m.row_count <> coalesce(l.n, 0)
                or m.reject_count <> coalesce(r.n, 0)
            """
        ).fetchall()
    assert mismatched == []


def other_backends_gone(env: dict[str, str]) -> bool:
    with connect(env) as conn:
        return not conn.execute(
            "select 1 from pg_stat_activity where datname = current_database() "
            "and pid <> pg_backend_pid() and backend_type = 'client backend'"
        ).fetchone()
