"""The pipeline's definitions run in this process (Dagster's execute_in_process),
with run history in a PostgreSQL database of the test's own: the job's marts equal
those of the plain load and `dbt build`; a warn-severity test that finds rows is a
warning, not a failure; a failed load fails the run before dbt starts.
The daemon, sensors, alerts and web UI: operations/test_serve.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    MARTS,
    REPO_ROOT,
    generate_feed,
    plain_run_marts,
    throwaway_database,
    warehouse_fingerprint,
)

pytestmark = pytest.mark.slow  # PostgreSQL, dbt

# Three days with the generator's faults: damaged lines become rejects, which a
# warn-severity test counts.
FEED = ("--days", "3", "--users", "20", "--songs", "40", "--events-per-day", "120")


@dataclass(frozen=True)
class JobRun:
    result: Any  # dagster's ExecuteInProcessResult
    env: dict[str, str]  # the PG* variables of the database it built
    feed: Path
    home: Path  # its DAGSTER_HOME: the manifest, each run's dbt output


@pytest.fixture(scope="module")
def dagster_instance(server_env, tmp_path_factory) -> Iterator[Any]:
    """A Dagster instance whose storage is a database of its own (as make serve's)."""
    from dagster import DagsterInstance

    from sparkify.orchestration.serve import storage_url

    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(
        REPO_ROOT / "src" / "sparkify" / "orchestration" / "dagster.yaml", home / "dagster.yaml"
    )
    for env in throwaway_database(server_env):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SPARKIFY_DAGSTER_PG_URL", storage_url(env["PGDATABASE"], env))
            with DagsterInstance.from_config(str(home)) as instance:
                yield instance


def settings_for(home: Path, feed: Path, tmp: Path) -> Any:
    from sparkify.orchestration import settings

    profiles = tmp / "dbt-profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copy(REPO_ROOT / "profiles.yml.example", profiles / "profiles.yml")
    return replace(
        settings.load(),
        feed=str(feed),
        target="dev",
        home=home,
        profiles_dir=profiles,
        report=tmp / "report.html",
        webhook="",
    )


def execute(instance: Any, settings: Any, env: dict[str, str]) -> Any:
    """The job, in this process, against the database `env` names."""
    from sparkify.orchestration.pipeline import JOB, build_definitions

    with pytest.MonkeyPatch.context() as patch:
        for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
            if key in env:
                patch.setenv(key, env[key])
        job = build_definitions(settings).resolve_job_def(JOB)
        return job.execute_in_process(instance=instance, raise_on_error=False)


@pytest.fixture(scope="module")
def job_run(server_env, dagster_instance, tmp_path_factory) -> Iterator[JobRun]:
    tmp = tmp_path_factory.mktemp("orchestrated")
    generate_feed(tmp / "feed", *FEED, "--faults", "--seed", "11")
    for env in throwaway_database(server_env):
        settings = settings_for(tmp / "home", tmp / "feed", tmp)
        yield JobRun(execute(dagster_instance, settings, env), env, tmp / "feed", tmp / "home")


def check_evaluations(result: Any) -> list[Any]:
    return [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_the_job_builds_the_marts_of_a_plain_load_and_dbt_build(job_run, server_env, tmp_path):
    assert job_run.result.success
    plain = plain_run_marts(server_env, job_run.feed, tmp_path)
    assert warehouse_fingerprint(job_run.env, MARTS, load_times=False) == plain


def test_every_model_is_an_asset_and_the_report_follows_them(job_run):
    from dagster import AssetKey

    materialized = {
        event.asset_key
        for event in job_run.result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }
    manifest = json.loads((job_run.home / "dbt-dev" / "manifest.json").read_text())
    built = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed")
        and node["config"]["materialized"] != "ephemeral"
    }
    names = {key.path[-1] for key in materialized}
    assert built <= names, built - names
    assert (
        set(manifest["sources"])
        and {source["name"] for source in manifest["sources"].values()} <= names
    )
    assert AssetKey("sparkify_listening_report") in materialized


def test_a_warn_severity_test_that_finds_rows_is_a_warning_not_a_failure(job_run):
    from dagster import AssetCheckSeverity

    evaluations = check_evaluations(job_run.result)
    assert evaluations
    warned = [e for e in evaluations if not e.passed]
    assert warned, "the faults feed should make a warn-severity test find rows"
    assert {e.severity for e in warned} == {AssetCheckSeverity.WARN}
    assert job_run.result.success


def test_a_failed_load_fails_the_run_before_dbt(dagster_instance, server_env, tmp_path):
    from sparkify.loader.cli import EXIT_BY_KIND

    for env in throwaway_database(server_env):
        settings = settings_for(tmp_path / "home", tmp_path / "no_such_feed", tmp_path)
        result = execute(dagster_instance, settings, env)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["raw_load"]
    metadata = failures[0].event_specific_data.user_failure_data.metadata
    assert metadata["exit_code"].value == EXIT_BY_KIND["usage"]
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "dbt_build" not in started


def test_make_serve_refuses_a_port_in_use_and_starts_nothing(db_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**db_env, "SERVE_PORT": str(port), "DAGSTER_HOME": str(tmp_path / "dagster")}
        env["DATA_DIR"] = str(tmp_path / "feed")
        (tmp_path / "feed" / "log_data").mkdir(parents=True)
        refused = subprocess.run(
            ["make", "--no-print-directory", "serve"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert refused.returncode != 0
    said = refused.stderr.strip().splitlines()
    assert any(
        f"port {port}" in line and "in use" in line and "SERVE_PORT" in line for line in said
    )
    assert "Traceback" not in refused.stderr
    assert not list((tmp_path / "dagster").glob("pids/*.pid"))
