"""The orchestrator's overhead: the Dagster job against the same steps run plainly.

    python -m sparkify.embedded_pg exec -- python -m benchmarks.orchestrator [--rounds 2]

On one generated feed (make run's demo shape by default), each round builds two
fresh databases, alternating which goes first: the plain path (`load_raw.py`,
`dbt build`, `build_report.py`, one after the other, as `make load build report`
runs them) and the job `sparkify` run in this process (Dagster's
execute_in_process, its run history in a PostgreSQL database of its own: the
same load, one `dbt build` through dagster-dbt, the report). It prints each
time, the best of each and their ratio, and the load average before and after:
the machine is shared, so the figures are only comparable within a run.
The daemon's own latency (a sensor's interval, the queue, starting a process)
comes on top of a run launched by make serve, and is not in these figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def create(name: str) -> dict[str, str]:
    with psycopg.connect(dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return {**os.environ, "PGDATABASE": name}


def drop(name: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def step(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:2])} failed: {done.stderr[-2000:]}")


def plain(feed: Path, env: dict[str, str], work: Path) -> float:
    started = time.monotonic()
    step([sys.executable, "-m", "sparkify.loader", "--data-dir", str(feed), "-q"], env)
    step(
        [str(BIN / "dbt"), "build", "--target-path", str(work / "target")],
        {**env, "DBT_PROFILES_DIR": str(work / "profiles")},
    )
    step(
        [sys.executable, "-m", "sparkify.report.build_report", "--out", str(work / "plain.html")],
        env,
    )
    return time.monotonic() - started


def orchestrated(feed: Path, env: dict[str, str], work: Path, history: str) -> float:
    from dagster import DagsterInstance

    from sparkify.orchestration import settings
    from sparkify.orchestration.pipeline import JOB, build_definitions
    from sparkify.orchestration.serve import storage_url

    home = work / "dagster"
    home.mkdir(exist_ok=True)
    shutil.copy(
        REPO_ROOT / "src" / "sparkify" / "orchestration" / "dagster.yaml", home / "dagster.yaml"
    )
    os.environ["SPARKIFY_DAGSTER_PG_URL"] = storage_url(history)
    saved = os.environ.get("PGDATABASE")
    os.environ["PGDATABASE"] = env["PGDATABASE"]
    try:
        chosen = replace(
            settings.load(),
            feed=str(feed),
            target="dev",
            home=home,
            profiles_dir=work / "profiles",
            report=work / "job.html",
            webhook="",
        )
        job = build_definitions(chosen).resolve_job_def(JOB)  # parses the manifest once
        with DagsterInstance.from_config(str(home)) as instance:
            started = time.monotonic()
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            seconds = time.monotonic() - started
    finally:
        if saved is None:
            os.environ.pop("PGDATABASE", None)
        else:
            os.environ["PGDATABASE"] = saved
    if not result.success:
        raise SystemExit("bench: the job failed")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.orchestrator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--days", default="30")
    parser.add_argument("--events-per-day", default="300")
    args = parser.parse_args()
    if not os.environ.get("PGHOST"):
        raise SystemExit("bench: run through `python -m sparkify.embedded_pg exec -- ...`")
    with tempfile.TemporaryDirectory(prefix="bench-orchestrator-") as tmp:
        work = Path(tmp)
        (work / "profiles").mkdir()
        shutil.copy(REPO_ROOT / "profiles.yml.example", work / "profiles" / "profiles.yml")
        feed = work / "feed"
        step(
            [
                sys.executable,
                "-m",
                "sparkify.generator",
                "--out",
                str(feed),
                "--days",
                args.days,
                "--events-per-day",
                args.events_per_day,
                "--quiet",
            ],
            dict(os.environ),
        )
        history = f"bench_dagster_{uuid.uuid4().hex[:8]}"
        create(history)
        times: dict[str, list[float]] = {"plain": [], "job": []}
        print(f"load average before: {os.getloadavg()}")
        try:
            for round_ in range(args.rounds):
                order = ["plain", "job"] if round_ % 2 == 0 else ["job", "plain"]
                for which in order:
                    name = f"bench_orch_{which}_{uuid.uuid4().hex[:8]}"
                    env = create(name)
                    try:
                        seconds = (
                            plain(feed, env, work)
                            if which == "plain"
                            else orchestrated(feed, env, work, history)
                        )
                    finally:
                        drop(name)
                    times[which].append(seconds)
                    print(f"round {round_ + 1}: {which:5} {seconds:6.1f} s", flush=True)
        finally:
            drop(history)
        print(f"load average after: {os.getloadavg()}")
    best = {which: min(values) for which, values in times.items()}
    print(
        f"best: plain {best['plain']:.1f} s, job {best['job']:.1f} s: "
        f"the job takes {best['job'] / best['plain']:.2f}x the plain steps "
        f"({best['job'] - best['plain']:+.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
