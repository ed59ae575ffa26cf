"""Least privilege: log in as each role and prove it can do its job and nothing more.

src/sparkify/roles.py creates the roles; dbt's grants config keeps the analyst's
access to the marts after every build. Each test uses role names of its own
(roles are cluster-wide) and drops them afterwards.
"""

from __future__ import annotations

import psycopg
import pytest

from database_roles import JOBS, as_role, run_setup_roles
from helpers import connect, generate_feed, run_dbt, run_loader, scalar

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

MARTS = ("songplays", "users", "songs", "artists", "time")
SMALL_FEED = ("--days", "3", "--users", "8", "--songs", "30", "--events-per-day", "60")


def allowed(env: dict[str, str], statement: str) -> bool:
    """Does PostgreSQL let this role run the statement? (Rolled back either way.)"""
    with connect(env) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()
    return True


def refused(env: dict[str, str], statement: str) -> bool:
    return not allowed(env, statement)


def test_each_role_does_its_job_and_nothing_more(roles, tmp_path):
    names, env = roles
    setup = run_setup_roles(env)
    assert setup.returncode == 0, setup.stderr
    assert all(name in setup.stdout for name in names.values())
    loader, transformer, analyst = (as_role(env, names[job]) for job in JOBS)

    # Each does its job: the loader loads, the transformer builds, the analyst reads.
    feed = tmp_path / "feed"
    generate_feed(feed, *SMALL_FEED)
    loaded = run_loader(loader, "--data-dir", feed)
    assert loaded.returncode == 0, loaded.stderr
    built = run_dbt(transformer, tmp_path, "build")
    assert built.returncode == 0, built.stdout[-4000:]
    with connect(analyst) as conn:
        counts = {
            m: conn.execute(f"select count(*) from analytics.{m}").fetchone()[0] for m in MARTS
        }
    assert all(counts.values()), counts
    # The reports are the analysts' too.
    assert allowed(analyst, "select count(*) from reports.rpt_top_songs")
    # And the analyst finds both without schema prefixes.
    with connect(analyst) as conn:
        assert conn.execute("select count(*) from songplays").fetchone()[0] == counts["songplays"]
        assert conn.execute("select count(*) from rpt_top_songs").fetchone()[0] > 0

    # And nothing more.
    assert refused(analyst, "select * from raw.events limit 1")
    assert refused(analyst, "select * from raw.rejects limit 1")
    assert refused(analyst, "select * from staging.stg_sparkify__events limit 1")
    assert refused(analyst, "select * from audit.songplay_reconciliation limit 1")
    assert refused(analyst, "insert into analytics.time (start_time) values (now())")
    assert refused(analyst, "delete from analytics.users")
    assert refused(analyst, "create table analytics.mine (x int)")
    assert refused(analyst, "drop table analytics.songplays")
    assert refused(analyst, "create table public.mine (x int)")

    assert refused(loader, "select * from analytics.songplays limit 1")
    assert refused(loader, "delete from analytics.users")
    assert refused(loader, "drop table analytics.users")
    assert refused(loader, "create table analytics.mine (x int)")
    assert refused(loader, "select * from staging.stg_sparkify__events limit 1")
    assert refused(loader, "create schema elsewhere")
    assert refused(loader, "create table public.mine (x int)")

    assert allowed(transformer, "select count(*) from raw.events")
    assert allowed(transformer, "select count(*) from raw.loads")
    assert refused(transformer, "select nextval(pg_get_serial_sequence('raw.loads', 'load_id'))")
    assert refused(transformer, "insert into raw.events select * from raw.events limit 1")
    assert refused(transformer, "delete from raw.load_manifest")
    assert refused(transformer, "truncate raw.events")
    assert refused(transformer, "drop table raw.rejects")

    # The same, asked of the catalogue for every relation: no privilege leaks anywhere.
    with connect(env) as conn:
        leaks = conn.execute(
            "select r.rolname, n.nspname, c.relname from pg_class as c "
            "join pg_namespace as n on n.oid = c.relnamespace "
            "cross join (select unnest(%s::text[]) as rolname, unnest(%s::text[]) as denied) as r "
            "where c.relkind in ('r', 'v', 'm', 'p') and n.nspname = r.denied "
            "and has_table_privilege(r.rolname, c.oid, "
            "'select, insert, update, delete, truncate, references, trigger')",
            [
                [names["analyst"]] * 3 + [names["loader"]] * 4,
                ["raw", "staging", "audit", "staging", "analytics", "reports", "audit"],
            ],
        ).fetchall()
    assert leaks == []

    # A rebuild (new data, every mart replaced) keeps the analyst's access.
    later = tmp_path / "later"
    generate_feed(later, *SMALL_FEED, "--start-date", "2018-11-10")
    assert run_loader(loader, "--log-data", later / "log_data").returncode == 0
    rebuilt = run_dbt(transformer, tmp_path, "build", "--full-refresh")
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    with connect(analyst) as conn:
        after = {
            m: conn.execute(f"select count(*) from analytics.{m}").fetchone()[0] for m in MARTS
        }
    assert after["songplays"] > counts["songplays"]


def test_roles_set_up_after_a_superuser_run(roles, tmp_path):
    """`make run` first (no roles: grants are skipped), `make roles` later: all still works."""
    names, env = roles
    feed = tmp_path / "feed"
    generate_feed(feed, *SMALL_FEED)
    assert run_loader(env, "--data-dir", feed).returncode == 0
    first = run_dbt(env, tmp_path, "build")
    assert first.returncode == 0, first.stdout[-4000:]

    setup = run_setup_roles(env)
    assert setup.returncode == 0, setup.stderr
    with connect(env) as conn:
        owners = dict(
            conn.execute(
                "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) "
                "from pg_class as c join pg_namespace as n on n.oid = c.relnamespace "
                "where n.nspname in ('raw', 'analytics') and c.relkind = 'r'"
            ).fetchall()
        )
    assert owners["raw.events"] == names["loader"]
    # raw.loads too, with its identity sequence: the loader takes load ids from it.
    assert owners["raw.loads"] == names["loader"]
    assert owners["analytics.users"] == names["transformer"]

    loader, transformer, analyst = (as_role(env, names[job]) for job in JOBS)
    later = tmp_path / "later"
    generate_feed(later, *SMALL_FEED, "--start-date", "2018-11-10")
    loaded = run_loader(loader, "--log-data", later / "log_data")
    assert loaded.returncode == 0, loaded.stderr
    built = run_dbt(transformer, tmp_path, "build")
    assert built.returncode == 0, built.stdout[-4000:]
    with connect(analyst) as conn:
        assert conn.execute("select count(*) from analytics.songplays").fetchone()[0] > 0
    assert refused(analyst, "select * from raw.events limit 1")


def search_path(env: dict[str, str]) -> str:
    with connect(env) as conn:
        return scalar(conn, "show search_path")


def test_setup_roles_is_idempotent_and_refuses_bad_names(roles, other_db_env):
    names, env = roles
    assert run_setup_roles(env).returncode == 0
    again = run_setup_roles(env)
    assert again.returncode == 0, again.stderr
    # The analyst's search_path is set on the role in this database, and only there.
    assert search_path(as_role(env, names["analyst"])) == "analytics, reports, public"
    assert search_path(as_role(other_db_env, names["analyst"])) == '"$user", public'
    assert search_path(as_role(env, names["loader"])) == '"$user", public'
    bad = run_setup_roles({**env, "SPARKIFY_ANALYST_ROLE": 'x"; drop role postgres; --'})
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
