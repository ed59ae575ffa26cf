"""Every dbt model, seed and snapshot an asset, every data test an asset check
(dagster-dbt, from the project's manifest), built by one `dbt build`.

What failed is read from dbt's run_results.json, not from its printed output: a
model in error or an error-severity test that fails fails the run; a
warn-severity test that finds rows is a check that did not pass, at severity
WARN, and the run succeeds (dagster-dbt reads the severity from dbt's events).
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, Failure
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from sparkify.orchestration.settings import REPO_ROOT, SCHEDULED_BUILD, Settings

# run_results.json statuses that fail the run (dbt's own "the build failed").
FAILED = frozenset({"error", "fail", "runtime error"})


def project(settings: Settings) -> DbtProject:
    """The dbt project, its manifest parsed for the target once (dbt parse needs no server)."""
    dbt_project = DbtProject(
        project_dir=REPO_ROOT,
        target_path=settings.dbt_target_path,
        profiles_dir=settings.profiles_dir,
        target=settings.target,
    )
    if not dbt_project.manifest_path.exists():
        parse(settings)
    return dbt_project


def parse(settings: Settings) -> None:
    """`dbt parse` into the target's folder: the manifest the assets are made from."""
    done = subprocess.run(
        [
            str(Path(_venv_bin()) / "dbt"),
            "parse",
            "--project-dir",
            str(REPO_ROOT),
            "--profiles-dir",
            str(settings.profiles_dir),
            "--target",
            settings.target,
            "--target-path",
            str(settings.dbt_target_path),
            "--log-path",
            str(settings.home / "dbt-logs"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt parse failed: {done.stdout[-2000:]}")


def _venv_bin() -> str:
    import sys

    return str(Path(sys.executable).parent)


def dbt_resource(settings: Settings, dbt_project: DbtProject) -> DbtCliResource:
    return DbtCliResource(
        project_dir=str(dbt_project.project_dir),
        profiles_dir=str(settings.profiles_dir),
        target=settings.target,
        dbt_executable=str(Path(_venv_bin()) / "dbt"),
    )


def warehouse_assets(settings: Settings, dbt_project: DbtProject) -> AssetsDefinition:
    @dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="dbt_build")
    def dbt_build(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        target_path = settings.home / "runs" / context.run.run_id / "dbt"
        invocation = dbt.cli(
            list(SCHEDULED_BUILD), context=context, target_path=target_path, raise_on_error=False
        )
        yield from invocation.stream()
        failed = failures(target_path / "run_results.json", invocation.process.wait())
        if failed:
            raise Failure(
                description=f"dbt build: {len(failed)} failed: {', '.join(failed[:10])}",
                metadata={"failed": failed, "run_results": str(target_path / "run_results.json")},
            )

    return dbt_build


def failures(run_results: Path, exit_code: int | None) -> list[str]:
    """The nodes dbt's run_results.json says failed (a model in error, an
    error-severity test that failed); if dbt wrote none, the exit code decides."""
    if not run_results.exists():
        return [] if exit_code == 0 else [f"dbt exited {exit_code} without run_results.json"]
    results = json.loads(run_results.read_text())["results"]
    return [result["unique_id"] for result in results if result["status"] in FAILED]
