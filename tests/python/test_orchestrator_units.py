"""The orchestrator's pure parts, no server: what fails a dbt build, read from
run_results.json; the settings the definitions are made from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestration import settings
from orchestration.warehouse import failures


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
