"""Start, stop or report the orchestrator: Dagster's web UI and daemon on 127.0.0.1.

    python -m sparkify.orchestration.serve start [--port 3000]   # make serve
    python -m sparkify.orchestration.serve stop                  # make stop-serve
    python -m sparkify.orchestration.serve status

Run through `src/sparkify/embedded_pg.py exec` (as make does): the PG* variables name
the server whose databases the pipeline builds and where Dagster keeps its run
history (database SPARKIFY_DAGSTER_DB, `dagster` by default, created if
missing). State, logs and the PIDs live in DAGSTER_HOME (.dagster/ by default).
Both processes are stopped by the PIDs recorded at start (each leads its own
process group: the code server and the runs it launched go with it). A start
that fails stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from sparkify.orchestration import settings as settings_module
from sparkify.orchestration.settings import REPO_ROOT, Settings
from sparkify.orchestration.warehouse import parse
from sparkify.processes import live_process

DEFAULT_PORT = 3000
PROCESSES = ("webserver", "daemon")
STARTUP_SECONDS = 300


class ServeError(RuntimeError):
    """Said in one line, exit 1."""


def pid_file(home: Path, name: str) -> Path:
    return home / "pids" / f"{name}.pid"


def running(home: Path) -> dict[str, int]:
    """The recorded processes that are still alive (and still Dagster's)."""
    alive = {}
    for name in PROCESSES:
        path = pid_file(home, name)
        pid = int(path.read_text().split()[0]) if path.exists() else None
        if pid is not None and live_process(pid, is_dagster):
            alive[name] = pid
    return alive


def is_dagster(cmdline: list[str]) -> bool:
    return any("dagster" in part for part in cmdline)


def storage_url(database: str, env: Mapping[str, str] = os.environ) -> str:
    """A SQLAlchemy URL for the server the PG* variables name (a socket folder or
    a host); libpq itself reads PGPASSWORD, ~/.pgpass and PGSSL*, so no secret
    is written into it. psycopg2: dagster-postgres's driver (SQLAlchemy 2.1's
    default for postgresql:// is psycopg 3, whose NOTIFY it cannot send)."""
    host = env.get("PGHOST", "")
    port = env.get("PGPORT", "5432")
    user = urllib.parse.quote(env.get("PGUSER", "postgres"))
    query = urllib.parse.urlencode({"host": host, "port": port})
    return f"postgresql+psycopg2://{user}@/{urllib.parse.quote(database)}?{query}"


def ensure_database(database: str) -> None:
    try:
        with psycopg.connect(dbname="postgres", autocommit=True) as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", [database])
            if found.fetchone() is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    except psycopg.Error as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServeError(
            f"cannot reach or create the database {database} for Dagster's run history: "
            f"{said} (create it, or name another in SPARKIFY_DAGSTER_DB)"
        ) from None


def check_port(port: int) -> None:
    with socket.socket() as probe:
        # As the web server binds: a port left in TIME_WAIT by the last stop is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ServeError(
                f"port {port} on 127.0.0.1 is in use by another program: "
                f"make serve SERVE_PORT=<another port>"
            ) from None


def write_home(settings: Settings) -> None:
    home = settings.home
    (home / "serve-logs").mkdir(parents=True, exist_ok=True)
    (home / "pids").mkdir(exist_ok=True)
    shutil.copy(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
    (home / "workspace.yaml").write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: sparkify.orchestration.definitions\n"
        f"      working_directory: {json.dumps(str(REPO_ROOT))}\n"
        "      location_name: sparkify\n"
    )


def start(settings: Settings, port: int) -> str:
    home = settings.home
    url = f"http://127.0.0.1:{port}"
    alive = running(home)
    if alive:
        recorded = json.loads((home / "serve.json").read_text())
        return f"already running: {recorded['url']} (pids {', '.join(map(str, alive.values()))})"
    check_port(port)
    database = os.environ.get("SPARKIFY_DAGSTER_DB", "").strip() or "dagster"
    ensure_database(database)
    for run_id in end_orphaned_runs(home):  # the last stop did not (killed, rebooted)
        print(f"run {run_id} was left under way: marked failed (re-run it)", file=sys.stderr)
    write_home(settings)
    parse(settings)  # the manifest of the models as they are now
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SPARKIFY_DAGSTER_PG_URL": storage_url(database),
        "SPARKIFY_SERVE_URL": url,
    }
    bin_dir = Path(sys.executable).parent
    workspace = ["-w", str(home / "workspace.yaml")]
    commands = {
        "webserver": [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)],
        "daemon": [str(bin_dir / "dagster-daemon"), "run"],
    }
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, argv in commands.items():
            with open(home / "serve-logs" / f"{name}.log", "ab") as log:
                children[name] = process = subprocess.Popen(
                    [*argv, *workspace],
                    cwd=REPO_ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopped with its children
                )
            pid_file(home, name).write_text(f"{process.pid}\n")
        recorded = {"url": url, "port": port, "storage": env["SPARKIFY_DAGSTER_PG_URL"]}
        (home / "serve.json").write_text(json.dumps(recorded))
        wait_until_up(home, url, children)
    except BaseException:
        stop(home)
        raise
    logs = home / "serve-logs"
    return f"Dagster: {url} (web UI and daemon; logs in {logs}; make stop-serve stops them)"


def wait_until_up(home: Path, url: str, children: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """Until the web UI has loaded the definitions; an error if either process
    exits first (our own children: poll() sees it without reading /proc)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        for name, child in children.items():
            if child.poll() is not None:
                log = home / "serve-logs" / f"{name}.log"
                raise ServeError(
                    f"the Dagster {name} exited at start: {last_line(log)} (see {log})"
                )
        try:
            status, error = location_status(url)
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
            status, error = "", ""
        if error:
            raise ServeError(
                f"the definitions did not load: {error} "
                f"(see {home / 'serve-logs' / 'webserver.log'})"
            )
        if status == "LOADED":
            return
        if time.monotonic() > deadline:
            raise ServeError(
                f"the Dagster web UI did not answer on {url} within {STARTUP_SECONDS} s: "
                f"see {home / 'serve-logs' / 'webserver.log'}"
            )
        time.sleep(1)


def last_line(log: Path) -> str:
    """The log's last line: a Python process that died ends it with its error."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "it printed nothing"


LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
    loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def location_status(url: str) -> tuple[str, str]:
    """The code location's load status in the web UI, and its load error if any."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": LOCATION_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        entries = json.load(answer)["data"]["workspaceOrError"]["locationEntries"]
    entry = entries[0]
    loaded = entry.get("locationOrLoadError") or {}
    error = loaded.get("message", "") if loaded.get("__typename") == "PythonError" else ""
    return entry["loadStatus"], error.strip().splitlines()[-1] if error.strip() else ""


def end_orphaned_runs(home: Path) -> list[str]:
    """Mark failed the runs left started by processes that are gone (stopped
    mid-run, or the machine went down): each would otherwise hold its
    warehouse's place in the run queue for ever. Only when nothing serves."""
    recorded = home / "serve.json"
    storage = json.loads(recorded.read_text()).get("storage") if recorded.exists() else None
    if running(home) or not storage:
        return []
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["SPARKIFY_DAGSTER_PG_URL"] = storage
    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    with DagsterInstance.from_config(str(home)) as instance:
        orphans = instance.get_runs(filters=RunsFilter(statuses=statuses))
        for run in orphans:
            instance.report_run_failed(
                run, message="the orchestrator stopped during this run (make stop-serve)"
            )
    return [run.run_id for run in orphans]


def stop(home: Path, timeout: float = 60) -> bool:
    """Stop the recorded processes (and their groups), then end the runs they
    left started. Whether any was running."""
    alive = running(home)
    for pid in alive.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in running(home).values():
        _signal_group(pid, signal.SIGKILL)
    for name in PROCESSES:
        pid_file(home, name).unlink(missing_ok=True)
    for run_id in end_orphaned_runs(home):
        print(f"run {run_id} was under way: marked failed (re-run it)", file=sys.stderr)
    return bool(alive)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)  # start_new_session: the group is the process's PID


def status(home: Path) -> str:
    alive = running(home)
    if not alive:
        return "not running"
    recorded = json.loads((home / "serve.json").read_text())
    pids = ", ".join(f"{name} {pid}" for name, pid in alive.items())
    return f"running: {recorded['url']} ({pids}; logs in {home / 'serve-logs'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sparkify.orchestration.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SERVE_PORT", "").strip() or DEFAULT_PORT),
        help="the web UI's port on 127.0.0.1 (default: SERVE_PORT, else %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        settings = settings_module.load()
        if args.command == "start":
            print(start(settings, args.port))
        elif args.command == "stop":
            print("stopped" if stop(settings.home) else "not running")
        else:
            print(status(settings.home))
    except (ServeError, ValueError, RuntimeError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
