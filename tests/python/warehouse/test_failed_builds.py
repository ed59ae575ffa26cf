"""A dbt build that fails or is killed: each mart stays readable and whole, the
old version or the new, never a mix; the next build completes."""

from __future__ import annotations

import os
import signal

import pytest

from helpers import (
    connect,
    dbt_results,
    generate_feed,
    run_dbt,
    run_loader,
    wait_until,
    warehouse_fingerprint,
)
from interruptions import blocking_pids, other_backends_gone, start_dbt

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

FEED = ("--days", "4", "--users", "10", "--songs", "40", "--events-per-day", "150")
MARTS = ("songplays", "users", "songs", "artists", "time")


def marts(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Each mart's row count and a hash of all its rows: readable, and whole or not."""
    analytics = warehouse_fingerprint(env, ("analytics",))
    return {mart: analytics[f"analytics.{mart}"] for mart in MARTS}


def test_failed_dbt_build_leaves_previous_marts_whole(db_env, tmp_path):
    """An analyst's long query holds a mart: the build fails on it (lock timeout), or
    is killed while it waits. Each mart stays readable and is the old or the new
    version, never a mix; the mart that failed is exactly the old one."""
    feed = tmp_path / "feed"
    generate_feed(feed, *FEED)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0
    first = run_dbt(db_env, tmp_path, "build")
    assert first.returncode == 0, first.stdout[-4000:]
    old = marts(db_env)

    later = tmp_path / "later"
    generate_feed(later, *FEED, "--start-date", "2018-11-20")
    assert run_loader(db_env, "--log-data", later / "log_data").returncode == 0

    reader = connect(db_env)
    reader.execute("lock table analytics.users in access share mode")
    try:
        failed = run_dbt({**db_env, "PGOPTIONS": "-c lock_timeout=5s"}, tmp_path, "build")
        assert failed.returncode != 0
        assert "lock timeout" in dbt_results(tmp_path)["users"]["message"]
        after_failure = marts(db_env)
        assert after_failure["users"] == old["users"]

        killed = start_dbt(db_env, tmp_path, "build")
        wait_until(
            lambda: reader.info.backend_pid in blocking_pids(db_env),
            "the build to wait for the analyst's lock",
        )
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        reader.rollback()
        reader.close()
    wait_until(lambda: other_backends_gone(db_env), "the killed build's session to end")
    after_kill = marts(db_env)
    assert after_kill["users"] == old["users"]

    final = run_dbt(db_env, tmp_path, "build")
    assert final.returncode == 0, final.stdout[-4000:]
    new = marts(db_env)
    assert new["songplays"][0] > old["songplays"][0]
    for mart in MARTS:
        assert after_failure[mart] in (old[mart], new[mart]), mart
        assert after_kill[mart] in (old[mart], new[mart]), mart
