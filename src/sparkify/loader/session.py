"""The loader's connections: libpq's variables, and no server-side timeouts.

A DBA may set statement_timeout, lock_timeout or
idle_in_transaction_session_timeout on the database or a role, for good
reasons, but a bulk load must not be stopped by them: a big file's COPY runs
for minutes, and a second loader waits for the first on a lock. Like pg_dump
and pg_restore, the loader sets them to 0 in its own sessions (and
transaction_timeout, on PostgreSQL 17 and later). Other sessions keep theirs.
"""

from __future__ import annotations

import psycopg

# Set to 0 in every session the loader opens.
NO_TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


def connect(application_name: str) -> psycopg.Connection:
    """An autocommit connection from the PG* variables, without timeouts."""
    conn = psycopg.connect(autocommit=True, application_name=application_name)
    try:
        settings = list(NO_TIMEOUTS)
        if conn.info.server_version >= 170000:
            settings.append("transaction_timeout")
        for setting in settings:
            conn.execute("select set_config(%s, '0', false)", [setting])
    except BaseException:
        conn.close()
        raise
    return conn
