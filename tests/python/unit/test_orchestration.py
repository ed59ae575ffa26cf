"""The orchestrator's parts that need no server: what fails a dbt build, read from
run_results.json; the settings the definitions are made from; how make serve
tells whether its processes are running."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkify.orchestration import serve, settings
from sparkify.orchestration.warehouse import failures


def write_results(path: Path, statuses: dict[str, str]) -> Path:
    results = [{"unique_id": uid, "status": status} for uid, status in statuses.items()]
    path.write_text(json.dumps({"results": results}))
    return path


def test_errors_and_failed_error_tests_fail_the_build_warnings_do_not(tmp_path):
    run_results = write_results(
        tmp_path / "run_results.json",
        {
            "model.sparkify.songplays": "error",
            "test.sparkify.relationships_songplays_user_id": "fail",
            "test.sparkify.songplays_plays_without_user": "warn",
            "model.sparkify.users": "success",
            "test.sparkify.unique_users_user_id": "pass",
            "model.sparkify.time": "skipped",
        },
    )
    assert failures(run_results, 1) == [
        "model.sparkify.songplays",
        "test.sparkify.relationships_songplays_user_id",
    ]


def test_without_run_results_the_exit_code_decides(tmp_path):
    assert failures(tmp_path / "run_results.json", 0) == []
    assert len(failures(tmp_path / "run_results.json", 2)) == 1


def test_the_target_is_chosen_by_a_variable_and_checked(monkeypatch):
    monkeypatch.setenv("SPARKIFY_TARGET", "spark")
    monkeypatch.setenv("SPARKIFY_LAKE", "/srv/lake")
    chosen = settings.load()
    assert chosen.target == "spark"
    assert chosen.loader_args()[-2:] == ["--lake", "/srv/lake"]
    assert chosen.dbt_target_path.name == "dbt-spark"
    monkeypatch.setenv("SPARKIFY_TARGET", "snowflake")
    with pytest.raises(ValueError, match="SPARKIFY_TARGET"):
        settings.load()


@pytest.fixture
def dagster_like(tmp_path) -> Iterator[Any]:
    """Starts Python programs named like Dagster's (a script with a shebang, as
    dagster-daemon is), each logging to serve-logs/<name>.log; kills them after."""
    (tmp_path / "serve-logs").mkdir()
    (tmp_path / "pids").mkdir()
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, code: str) -> subprocess.Popen[bytes]:
        script = tmp_path / f"dagster-{name}"
        script.write_text(f"#!{sys.executable}\n{code}\n")
        script.chmod(0o755)
        with open(tmp_path / "serve-logs" / f"{name}.log", "wb") as log:
            child = subprocess.Popen(
                [script], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        serve.pid_file(tmp_path, name).write_text(f"{child.pid}\n")
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.wait()


def test_a_process_is_running_from_the_moment_it_is_started(dagster_like, tmp_path):
    # Right after Popen returns, /proc/PID/cmdline can be empty for a moment
    # (too short to hit on purpose here; CI hit it): running() must wait it out,
    # not take a live daemon for dead.
    for _ in range(20):
        child = dagster_like("daemon", "import time; time.sleep(60)")
        assert serve.running(tmp_path) == {"daemon": child.pid}
        child.kill()
        child.wait()  # reaped: its PID is free
        assert serve.running(tmp_path) == {}


def test_a_process_that_exits_at_start_fails_the_start_with_its_last_words(dagster_like, tmp_path):
    children = {
        "webserver": dagster_like("webserver", "import time; time.sleep(60)"),
        "daemon": dagster_like("daemon", "raise SystemExit('DagsterError: no storage')"),
    }
    with pytest.raises(serve.ServeError, match=r"daemon exited at start: DagsterError: no storage"):
        serve.wait_until_up(tmp_path, "http://127.0.0.1:9", children)
