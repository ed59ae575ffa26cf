"""The server's side of a load: errors told apart by SQLSTATE, a cancelled
statement, the DBA's timeouts, and TEMP revoked from PUBLIC. Each is one line
that says what happened and what to do, and nothing is half loaded."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from database_roles import as_role, run_setup_roles
from feed_lines import make_feed
from helpers import (
    WAIT_SECONDS,
    assert_loads_match,
    connect,
    kill_group,
    run_loader,
    scalar,
    start_loader,
    wait_until,
    write_lines,
)
from interruptions import Blocker, assert_nothing_half_loaded, other_backends_gone
from landing import (
    DEEPER,
    EV,
    deep_array,
    expected_outcomes,
    numbered,
    one_line_said,
    outcomes,
)
from sparkify.loader.errors import describe

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt


def _statement_timeout(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("set statement_timeout = '50ms'")
    conn.execute("select pg_sleep(2)")


def _lock_timeout(conn: psycopg.Connection, env: dict[str, str]) -> None:
    with connect(env) as holder:
        holder.execute("create table if not exists held (x int)")
        holder.commit()
        holder.execute("lock table held")
        conn.execute("set lock_timeout = '50ms'")
        try:
            conn.execute("lock table held")
        finally:
            holder.rollback()


def _stack_depth(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("select %s::jsonb", [deep_array(DEEPER).decode()])


def _terminated(conn: psycopg.Connection, env: dict[str, str]) -> None:
    with connect(env) as other:
        other.execute("select pg_terminate_backend(%s)", [conn.info.backend_pid])
        other.commit()
    conn.execute("select 1")


def _idle_in_transaction(conn: psycopg.Connection, env: dict[str, str]) -> None:
    conn.execute("set idle_in_transaction_session_timeout = '100ms'")
    conn.execute("select 1")
    # The next statement goes once the server has ended the session. Sent
    # before (a fixed sleep on a loaded machine), it can reach the backend
    # before its FATAL is out; closed with the statement unread, the socket is
    # reset, the FATAL is lost, and the client sees only a closed connection.
    wait_until(lambda: other_backends_gone(env), "the server to end the idle transaction")
    conn.execute("select 1")


@pytest.mark.parametrize(
    ("cause", "said"),
    [
        (_statement_timeout, "SQLSTATE 57014"),
        (_lock_timeout, "SQLSTATE 55P03"),
        (_stack_depth, "exceeds a PostgreSQL limit"),
        (_terminated, "SQLSTATE 57P01"),
        (_idle_in_transaction, "ended an idle transaction"),
    ],
    ids=["statement_timeout", "lock_timeout", "stack_depth", "terminated", "idle_in_transaction"],
)
def test_server_errors_are_told_apart(db_env, cause, said):
    """Real errors from the server, each an OperationalError or worse to psycopg:
    the loader's one line says which it is, not 'lost the connection'."""
    with connect(db_env) as conn, pytest.raises(psycopg.Error) as raised:
        cause(conn, db_env)
    text = describe(raised.value)
    assert said in text, text
    assert "lost the connection" not in text, text


def test_cancelled_load_says_so(db_env, tmp_path):
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0  # the schema
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    loader = start_loader(db_env, tmp_path / "err", "--data-dir", feed, "--workers", "1")
    try:
        (pid,) = wait_until(blocker.blocked_pids, "the loader to block on the held row")
        with connect(db_env) as conn:
            conn.execute("select pg_cancel_backend(%s)", [pid])
        loader.wait(timeout=WAIT_SECONDS)
    finally:
        blocker.release()
        if loader.poll() is None:
            kill_group(loader)
    last = one_line_said((tmp_path / "err").read_text())
    assert loader.returncode == 1
    assert "cancelled" in last and "SQLSTATE 57014" in last and "re-run" in last, last
    assert_nothing_half_loaded(db_env)
    assert run_loader(db_env, "--data-dir", feed).returncode == 0


def _blocked_for(env: dict[str, str], pid: int) -> float:
    """Seconds the backend has been running its current statement."""
    with connect(env) as conn:
        seconds = scalar(
            conn,
            "select extract(epoch from now() - query_start) from pg_stat_activity where pid = %s",
            [pid],
        )
    return float(seconds or 0)


def test_dba_timeouts_do_not_stop_a_load_and_a_second_loader_waits(db_env, tmp_path):
    """statement_timeout, lock_timeout and idle_in_transaction_session_timeout set on
    the database: the loader's sessions set them to 0, so a load blocked for longer
    than all three finishes, and a second loader waits for the first."""
    feed = make_feed(tmp_path / "feed", days=3, per_day=20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_loader(db_env, "--log-data", empty).returncode == 0  # the schema
    # Connected before the settings: the test's own idle transaction is not ended.
    blocker = Blocker(db_env, "log_data/2018/11/2018-11-03-events.json")
    with connect(db_env) as conn:
        conn.autocommit = True
        database = sql.Identifier(db_env["PGDATABASE"])
        for setting in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"):
            conn.execute(
                sql.SQL("alter database {} set {} = '500ms'").format(
                    database, sql.Identifier(setting)
                )
            )
    first = start_loader(db_env, tmp_path / "first.err", "--data-dir", feed, "--workers", "2")
    second = None
    try:
        (pid,) = wait_until(blocker.blocked_pids, "the first loader to block on the held row")
        second = start_loader(db_env, tmp_path / "second.err", "--data-dir", feed)
        wait_until(
            lambda: "another load_raw is running" in (tmp_path / "second.err").read_text(),
            "the second loader to say it waits",
        )
        # Well past every timeout: the first loader's statement and transaction,
        # and the second loader's wait for the lock.
        wait_until(
            lambda: (
                first.poll() is not None
                or second.poll() is not None
                or _blocked_for(db_env, pid) > 3
            ),
            "3 s of waiting (or a loader to give up)",
        )
        assert first.poll() is None and second.poll() is None
    finally:
        blocker.release()
    first.wait(timeout=WAIT_SECONDS)
    second.wait(timeout=WAIT_SECONDS)
    assert first.returncode == 0, (tmp_path / "first.err").read_text()
    assert second.returncode == 0, (tmp_path / "second.err").read_text()
    assert len(outcomes(db_env)) == 3 * 20 + 3
    assert_loads_match(db_env)


def test_careful_path_needs_no_temp_privilege(roles, tmp_path):
    names, env = roles
    assert run_setup_roles(env).returncode == 0
    with connect(env) as conn:
        conn.autocommit = True
        conn.execute(
            sql.SQL("revoke temporary on database {} from public").format(
                sql.Identifier(env["PGDATABASE"])
            )
        )
    loader = as_role(env, names["loader"])
    with connect(loader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("create temporary table t (x int)")
    feed = tmp_path / "feed"
    cases = {
        # a \u0000 line (judged by PostgreSQL) beside a refused one (careful path)
        "log_data/nul.json": (
            [numbered(1), numbered(2, song="nul \u0000"), b'{"ts": NaN}', numbered(3)],
            [EV, "jsonb_refused", "not_json", EV],
        ),
        "log_data/suspect-only.json": (
            [numbered(4, song="nul \u0000"), numbered(5)],
            ["jsonb_refused", EV],
        ),
    }
    for relative, (lines, _) in cases.items():
        write_lines(feed / relative, lines)
    result = run_loader(loader, "--log-data", feed / "log_data")
    assert result.returncode == 0, result.stderr
    assert outcomes(env) == expected_outcomes(feed, {r: w for r, (_, w) in cases.items()})
