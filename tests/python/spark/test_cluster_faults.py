"""Faults of the Spark cluster mid-build, and readers beside a build (issue 24).

The module starts a cluster of its own (src/sparkify/spark_cluster.py, by its CLI, in
a SPARK_DIR and on free ports), with its catalog in an embedded PostgreSQL of
its own (a data folder of the module's): the tests kill its daemons and restart
that server, which must not touch the test session's cluster or server. The
course sample lands in one lake, a few days at a time, and dbt builds
the marts and what they read (`dbt run --select +songplays ...`, as a user runs
`dbt build --target spark`, less the data tests: the faults are the point):
- a worker killed (SIGKILL, by its PID) when a named model starts: Spark runs
  the work on the other worker, the build passes, and its tables equal a
  `--full-refresh` build's; no executor of the dead worker is left behind;
- the Thrift server killed the same way: dbt fails, naming the server it lost
  (the cluster's status says what to do); `start` brings the cluster back, and the next plain build
  catches up with the new days and equals a full refresh;
- the catalog's PostgreSQL restarted between builds: the next build passes
  and equals a full refresh;
- two builds of the same new days at once: each passes or fails on a lost
  commit race, and the next plain build equals a full refresh; a build
  writes a landing view only when its definition changed;
- two readers, a PyHive session on the Thrift server and a second Spark
  application of the cluster (its own driver, the same catalog in
  PostgreSQL), read a mart while a build rewrites it: every answer whole;
- `stop` leaves no JVM of the module's cluster running.
Tables are compared through the Thrift server (PyHive), as any client sees them.

Marked `spark` (make test-spark) and slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from course_oracle import ORACLE_MARTS, needs_udacity
from helpers import (
    UDACITY_SAMPLE,
    connect,
    dbt_invocation,
    run_loader,
    wait_until,
)
from spark_warehouse import (
    SparkCluster,
    cluster_env,
    command_line,
    is_alive,
    own_processes,
    recorded_pids,
    spark_env,
)
from spark_warehouse import cluster_cli as cli
from sparkify import embedded_pg, spark_cluster

pytestmark = [pytest.mark.spark, pytest.mark.slow, needs_udacity]

# The marts and every model they read: what each build here runs.
SELECTION = ("--select", " ".join(f"+{mart}" for mart in ORACLE_MARTS))
# The schemas those models build tables in, compared with a full refresh.
COMPARED = ("staging", "analytics")
THRIFT_APP = "Sparkify Thrift server"
DAYS = sorted((UDACITY_SAMPLE / "log_data").rglob("*-events.json"))


@dataclass
class Faults:
    """The module's cluster, its own PostgreSQL, and the one lake it builds from."""

    cluster: SparkCluster
    pgdata: Path
    feed: Path
    lake: Path
    work: Path
    builds: int = 0
    landed: int = 0

    @property
    def dbt_env(self) -> dict[str, str]:
        return spark_env(self.cluster.env, self.cluster, self.lake)

    def land(self, through: int) -> None:
        """Copy the sample's days up to `through` into the feed; land what is new."""
        for day in DAYS[:through]:
            target = self.feed / day.relative_to(UDACITY_SAMPLE)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(day, target)
        landed = run_loader(self.dbt_env, "--data-dir", self.feed, "--lake", self.lake)
        assert landed.returncode == 0, landed.stderr[-3000:]
        self.landed = through

    def build(self, *args: str, selection: tuple[str, ...] = SELECTION) -> Build:
        """Start `dbt run --target spark` (on the marts); its output goes to a file."""
        self.builds += 1
        folder = self.work / f"build-{self.builds}"
        folder.mkdir()
        command, env = dbt_invocation(
            self.dbt_env, folder, "run", "--target", "spark", *selection, *args
        )
        output = folder / "stdout.txt"
        with open(output, "w") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder
            )
        return Build(process, output, folder / "dbt-target" / "run_results.json")

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table of the compared schemas, as the Thrift server reads it."""
        found = {}
        for schema in COMPARED:
            for _, name, *_ in self.cluster.query(f"show tables in {schema}"):
                if name.endswith(("__rewrite", "consumed_loads")):
                    continue
                rows = self.cluster.query(f"select * from {schema}.{name}")
                found[f"{schema}.{name}"] = sorted(rows, key=repr)
        return found

    def equals_its_full_refresh(self) -> None:
        """The tables now equal what `--full-refresh` builds from the same lake."""
        built = self.tables()
        assert built["analytics.songplays"], "no songplay was built"
        refreshed = self.build("--full-refresh").finished()
        assert refreshed.returncode == 0, refreshed.output
        again = self.tables()
        differ = {
            name: f"{len(built.get(name, []))} vs {len(again.get(name, []))} rows"
            for name in sorted(set(built) | set(again))
            if built.get(name) != again.get(name)
        }
        assert differ == {}


@dataclass
class Build:
    process: subprocess.Popen[bytes]
    stdout: Path
    run_results: Path
    returncode: int | None = None

    @property
    def output(self) -> str:
        return self.stdout.read_text(errors="replace")[-6000:]

    def wait_for_start(self, model: str, timeout: float = 900) -> None:
        """Until dbt says it started `model` (a deterministic moment for a fault)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(
                " START " in line and f".{model} " in line
                for line in self.stdout.read_text(errors="replace").splitlines()
            ):
                return
            assert self.process.poll() is None, f"dbt ended before {model}:\n{self.output}"
            time.sleep(0.2)
        raise AssertionError(f"dbt did not start {model} within {timeout:.0f} s")

    def finished(self) -> Build:
        self.returncode = self.process.wait(timeout=1500)
        return self

    def results(self) -> dict[str, Any]:
        return {
            result["unique_id"]: result
            for result in json.loads(self.run_results.read_text())["results"]
        }


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    fetched = cli(dict(os.environ), "jars")
    assert fetched.returncode == 0, fetched.stderr
    work = tmp_path_factory.mktemp("faults")
    pgdata = work / "pg"
    pg_env = {**os.environ, **embedded_pg.start(pgdata=pgdata)}
    spark_dir = work / "spark"
    cluster = SparkCluster(cluster_env(pg_env, spark_dir, "metastore"), spark_dir, "metastore")
    try:
        started = cli(cluster.env, "start")
        assert started.returncode == 0, started.stderr
        found = Faults(cluster, pgdata, work / "feed", work / "lake", work)
        shutil.copytree(UDACITY_SAMPLE / "song_data", found.feed / "song_data")
        yield found
    finally:
        cli(cluster.env, "stop")
        embedded_pg.stop(pgdata)


def executors_of(pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(pid).children(recursive=True)
        if "CoarseGrainedExecutorBackend" in command_line(child)
    ]


def thrift_app(cluster: SparkCluster) -> dict[str, Any]:
    apps = [app for app in cluster.master_json()["activeapps"] if app["name"] == THRIFT_APP]
    assert len(apps) == 1, apps
    return apps[0]


def unread_bytes(pid: int) -> int:
    """Bytes waiting, unread, in the process's TCP sockets (/proc/PID/net/tcp*'s
    rx_queue): a stopped executor's tell that the driver sent it work."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    waiting = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                waiting += int(fields[4].split(":")[1], 16)
    return waiting


def test_a_worker_killed_mid_build_leaves_a_build_equal_to_its_full_refresh(
    faults: Faults,
) -> None:
    faults.land(through=8)
    assert cli(faults.cluster.env, "start").returncode == 0
    build = faults.build()
    build.wait_for_start("stg_sparkify__events")
    # The worker whose executor runs the Thrift server's tasks (it holds one of
    # the two cores; the other is left to other applications).
    pids = recorded_pids(faults.cluster.spark_dir)
    busy = [name for name in ("worker-1", "worker-2") if executors_of(pids[name])]
    assert len(busy) == 1, busy
    victim, survivor = busy[0], ({"worker-1", "worker-2"} - set(busy)).pop()
    [executor] = executors_of(pids[victim])
    # Held still (SIGSTOP) until the driver has sent it tasks: they are in
    # flight, never finished, when its worker dies.
    executor.suspend()
    try:
        wait_until(lambda: unread_bytes(executor.pid) > 0, "the driver sends the executor tasks")
        os.kill(pids[victim], signal.SIGKILL)
        # The master gives the application an executor on the surviving worker.
        wait_until(lambda: bool(executors_of(pids[survivor])), "an executor on the other worker")
    finally:
        executor.resume()
    # ... and the dead worker's executor, its worker gone, ends itself.
    wait_until(lambda: not is_alive(executor), "the dead worker's executor exits", 60)

    assert build.finished().returncode == 0, build.output
    assert {r["status"] for r in build.results().values()} == {"success"}
    state = faults.cluster.master_json()
    assert state["aliveworkers"] == 1, state["workers"]
    assert thrift_app(faults.cluster)["cores"] == 1
    faults.equals_its_full_refresh()


def test_the_thrift_server_killed_mid_build_fails_clearly_then_catches_up(
    faults: Faults,
) -> None:
    faults.land(through=16)
    # A partly running cluster (a worker killed above) is started again whole.
    assert cli(faults.cluster.env, "start").returncode == 0
    # One model at a time, so that models start after the kill and each says
    # which server it could not reach (with the profile's 4 threads, the
    # models beside stg_sparkify__events are done by then; the model whose
    # statement was cut off says only "unexpected exception").
    build = faults.build("--threads", "1")
    build.wait_for_start("int_events_deduplicated")
    os.kill(recorded_pids(faults.cluster.spark_dir)["thrift"], signal.SIGKILL)

    assert build.finished().returncode == 1, build.output
    results = build.results()
    assert results["model.sparkify.stg_sparkify__events"]["status"] == "success"
    assert results["model.sparkify.int_events_deduplicated"]["status"] == "error"
    # Nothing after the kill passes; what tried says which server it lost.
    later = {
        name: result for name, result in results.items() if result["status"] not in ("success",)
    }
    assert "model.sparkify.songplays" in later
    port = f"('127.0.0.1', {faults.cluster.port('THRIFT')})"
    assert any(port in (result["message"] or "") for result in later.values()), later
    assert "Traceback" not in build.output
    # The cluster's status names the daemon that is gone, and what to do.
    status = cli(faults.cluster.env, "status").stdout
    assert status.startswith("partly running"), status
    assert "not: thrift" in status and "make spark-start" in status, status

    started = cli(faults.cluster.env, "start")
    assert started.returncode == 0, started.stderr
    caught_up = faults.build().finished()
    assert caught_up.returncode == 0, caught_up.output
    faults.equals_its_full_refresh()


def test_the_catalogs_postgresql_restarted_between_builds(faults: Faults) -> None:
    faults.land(through=24)
    assert cli(faults.cluster.env, "start").returncode == 0
    assert embedded_pg.stop(faults.pgdata)
    embedded_pg.start(pgdata=faults.pgdata)
    after = faults.build().finished()
    assert after.returncode == 0, after.output
    faults.equals_its_full_refresh()


def test_two_builds_at_once_each_pass_or_fail_clearly_and_the_next_equals_a_full_refresh(
    faults: Faults,
) -> None:
    """Two plain builds of the same new days, started together: each model's
    write is one Iceberg commit, so a write that conflicts with the other
    build's fails alone and neither leaves a torn or doubled table; the next
    plain build then equals a full refresh. A lost race is one of two
    refusals: a merge whose rows the other build changed since it read them
    (Iceberg's "Found conflicting files"; no claim recorded), or a table
    replaced whole by both (`create or replace`: the catalog refuses the
    commit made on the older version, "CommitFailedException"). (Tried: one
    build's first merge lost the race and the other passed; on 4 threads,
    one build lost stg_sparkify__events' merge and the other artists' replace.)"""
    faults.land(through=20)
    assert cli(faults.cluster.env, "start").returncode == 0
    if not faults.builds:
        assert faults.build().finished().returncode == 0
    faults.land(through=27)
    both = [faults.build(), faults.build()]
    for build in both:
        build.finished()
    for build in both:
        assert build.returncode in (0, 1), build.output
        assert "Traceback" not in build.output
        failed = {
            name: result["message"]
            for name, result in build.results().items()
            if result["status"] not in ("success", "skipped")
        }
        assert (build.returncode == 1) == bool(failed), build.output
        # A model that failed lost a commit race, and its message says so.
        lost = ("ValidationException: Found conflicting files", "CommitFailedException")
        conflicts = {name: any(m in message for m in lost) for name, message in failed.items()}
        assert all(conflicts.values()), failed
    after = faults.build().finished()
    assert after.returncode == 0, after.output
    faults.equals_its_full_refresh()


LANDING_VIEWS = ("loads", "load_manifest", "events", "songs", "rejects")


def landing_view_versions(faults: Faults) -> dict[str, str]:
    """Each raw view's current metadata file, as the catalog's PostgreSQL
    records it (Iceberg's JDBC catalog): a view written anew has a new one."""
    env = {**faults.cluster.env, "PGDATABASE": faults.cluster.catalog_db}
    with connect(env) as conn:
        rows = conn.execute(
            "select table_name, metadata_location from iceberg_tables"
            " where table_namespace = 'raw' and iceberg_type = 'VIEW'"
        ).fetchall()
    return dict(rows)


def test_a_build_writes_only_the_landing_views_whose_definition_changed(
    faults: Faults,
) -> None:
    """Every build starts by declaring the raw views (macros/landing.sql). A
    view already there as defined is left alone: two builds starting together
    replaced the same views at once, and Iceberg refused one of them ("View
    was updated concurrently", a build failed before its first model). A view
    whose definition differs, as after an upgrade, is replaced."""
    if not faults.builds:
        faults.land(through=20)
        assert faults.build().finished().returncode == 0
    faults.cluster.query(
        "alter view raw.songs set tblproperties ('sparkify.definition' = 'an older one')"
    )
    before = landing_view_versions(faults)
    assert sorted(before) == sorted(LANDING_VIEWS)
    built = faults.build(selection=("--select", "stg_sparkify__songs")).finished()
    assert built.returncode == 0, built.output
    after = landing_view_versions(faults)
    assert {name for name in before if after[name] != before[name]} == {"songs"}
    ((_, kept),) = faults.cluster.query("show tblproperties raw.songs ('sparkify.definition')")
    ((_, other),) = faults.cluster.query("show tblproperties raw.events ('sparkify.definition')")
    assert len(kept) == len(other) == 32 and kept != "an older one"


# A second Spark application of the cluster: its own driver, the catalog in
# PostgreSQL through the cluster's SPARK_CONF_DIR. It reads the mart until told
# to stop, one line per answer (or per error): "answer" and its JSON (pyspark
# may print lines of its own).
READER = r"""
import json, sys, time
from pathlib import Path
from pyspark.sql import SparkSession

query, table, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
spark = SparkSession.builder.appName("pytest reader").getOrCreate()
while not stop.exists():
    began = time.time()
    try:
        spark.sql(f"refresh table {table}")  # another process writes it
        answer = [list(row) for row in spark.sql(query).collect()]
    except Exception as exc:
        answer = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    answer = {"began": began, "ended": time.time(), "answer": answer}
    print("answer", json.dumps(answer), flush=True)
"""

MART = "analytics.songplays"
# The whole table in one value: its rows and a sum of their hashes.
FINGERPRINT = f"select count(*), sum(hash(*)) from {MART}"


def test_two_readers_get_whole_answers_while_a_build_writes_the_mart(faults: Faults) -> None:
    faults.land(through=24)
    assert cli(faults.cluster.env, "start").returncode == 0
    if not faults.builds:
        assert faults.build().finished().returncode == 0
    before = [list(faults.cluster.query(FINGERPRINT)[0])]
    faults.land(through=len(DAYS))  # new days: the build appends plays

    stop = faults.work / "stop-readers"
    script = faults.work / "reader.py"
    script.write_text(READER)
    reader = subprocess.Popen(
        [
            str(spark_cluster.pyspark_home() / "bin" / "spark-submit"),
            *["--master", f"spark://127.0.0.1:{faults.cluster.port('MASTER')}"],
            *["--conf", "spark.ui.enabled=false", "--conf", "spark.executor.memory=512m"],
            *[str(script), FINGERPRINT, MART, str(stop)],
        ],
        env={
            **faults.cluster.env,
            "SPARK_CONF_DIR": str(faults.cluster.spark_dir / "cluster" / "conf"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    spark_answers: list[dict[str, Any]] = []
    listen = threading.Thread(
        target=lambda: spark_answers.extend(
            json.loads(line.removeprefix("answer "))
            for line in reader.stdout or ()
            if line.startswith("answer ")
        )
    )
    listen.start()
    thrift_answers: list[dict[str, Any]] = []

    def read_through_thrift() -> None:
        while not stop.exists():
            began = time.time()
            try:
                answer: object = [list(faults.cluster.query(FINGERPRINT)[0])]
            except Exception as exc:  # an answer too: a reader that failed
                answer = f"{type(exc).__name__}: {exc}"
            thrift_answers.append({"began": began, "ended": time.time(), "answer": answer})

    pyhive = threading.Thread(target=read_through_thrift)
    try:
        wait_until(lambda: bool(spark_answers), "the second application answers", 300)
        pyhive.start()
        wait_until(lambda: bool(thrift_answers), "the PyHive reader answers")
        build = faults.build()
        began = time.time()
        build.finished()
        ended = time.time()
        after = [list(faults.cluster.query(FINGERPRINT)[0])]
    finally:
        stop.touch()
        reader.wait(timeout=300)
        listen.join()
        if pyhive.is_alive():
            pyhive.join()
    assert build.returncode == 0, build.output
    assert after != before  # the build did write the mart
    for answers in (spark_answers, thrift_answers):
        during = [a["answer"] for a in answers if a["ended"] > began and a["began"] < ended]
        assert during, "no answer while the build ran"
        assert [answer for answer in during if answer not in (before, after)] == []


def test_stop_leaves_no_jvm_of_the_cluster(faults: Faults) -> None:
    stopped = cli(faults.cluster.env, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert own_processes(faults.cluster.spark_dir) == []
