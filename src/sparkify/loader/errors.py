"""What a PostgreSQL error means for a load, and what to do: by SQLSTATE.

psycopg counts many server-side errors as OperationalError (a full disk, a
statement cancelled, a lock not granted, a program limit), as it does a lost
connection. Their SQLSTATEs tell them apart, and each asks for something else:
a re-run helps after a lost connection, not after a full disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg

from sparkify.messages import one_line

_RERUN = "the batch under way was rolled back: re-run to finish"

# SQLSTATE (or its two-character class) -> (what happened, what to do).
_BY_SQLSTATE: dict[str, tuple[str, str]] = {
    "53100": (
        "PostgreSQL is out of disk space",
        "free space on the server (or grow its volume), then re-run; "
        "the batch under way was rolled back",
    ),
    "53200": (
        "PostgreSQL ran out of memory",
        "lower --workers or --batch-mb, or give the server more memory, then re-run",
    ),
    "53300": (
        "PostgreSQL has no connection slot left",
        "lower --workers or raise max_connections, then re-run",
    ),
    "53": ("PostgreSQL ran out of a resource", "see the server's log, then re-run"),
    "54": (
        "a value exceeds a PostgreSQL limit",
        "keep --max-line-bytes at its default (64M) or under jsonb's 256 MB, so that "
        "longer lines are rejects; the batch under way was rolled back: re-run",
    ),
    "57014": (
        "PostgreSQL cancelled a statement of the load",
        "an administrator's pg_cancel_backend (the loader sets statement_timeout to 0 "
        "in its own sessions); " + _RERUN,
    ),
    "55P03": (
        "a lock was not granted in time",
        "the loader sets lock_timeout to 0 in its own sessions: look for a pooler "
        "or proxy that sets it; " + _RERUN,
    ),
    "25P03": (
        "PostgreSQL ended an idle transaction of the load",
        "the loader sets idle_in_transaction_session_timeout to 0 in its own "
        "sessions: look for a pooler or proxy that sets it; " + _RERUN,
    ),
    "25P04": (
        "PostgreSQL ended a transaction of the load (transaction_timeout)",
        "look for a pooler or proxy that sets it; " + _RERUN,
    ),
    "57P01": (
        "PostgreSQL ended the session (shut down, or terminated by an administrator)",
        _RERUN + " once the server is up",
    ),
    "57P02": ("PostgreSQL crashed mid-load", _RERUN + " once the server is up"),
    "57P03": ("PostgreSQL is starting or stopping", _RERUN + " once the server is up"),
    "08": ("lost the connection to PostgreSQL mid-load", _RERUN),
    "42501": (
        "the role lacks a privilege",
        "load as the loader role of 'make roles' (src/sparkify/roles.py), or grant it",
    ),
}


def describe(exc: psycopg.Error) -> str:
    """One line: what happened (the server's words), and what to do."""
    state = exc.sqlstate
    if state is None:  # no answer from the server at all: the connection is gone
        what, todo = _BY_SQLSTATE["08"]
    else:
        what, todo = _BY_SQLSTATE.get(state) or _BY_SQLSTATE.get(
            state[:2], ("PostgreSQL refused the load", "the batch under way was rolled back")
        )
    code = f"SQLSTATE {state}: " if state else ""
    return f"{what} ({code}{one_line(exc)}); {todo}"


class UsageError(Exception):
    """Bad arguments or a feed that cannot be loaded as asked: one line, exit code 2."""


class ServerError(Exception):
    """PostgreSQL failed the load after it began: what and what to do, in one line
    (describe, by SQLSTATE); exit code 1."""


@contextlib.contextmanager
def described() -> Iterator[None]:
    """Turn PostgreSQL's errors into a ServerError that says what to do."""
    try:
        yield
    except psycopg.Error as exc:
        raise ServerError(describe(exc)) from exc
