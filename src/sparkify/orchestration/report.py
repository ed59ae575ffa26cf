"""The report (src/sparkify/report/build_report.py) as an asset downstream of the models the
dbt exposure `sparkify_listening_report` names, as the docs site draws it."""

import json

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, Failure, asset
from dagster_dbt import DagsterDbtTranslator, DbtProject

from sparkify.orchestration import commands
from sparkify.orchestration.settings import Settings

EXPOSURE = "sparkify_listening_report"


def exposure_deps(dbt_project: DbtProject) -> list[AssetKey]:
    """The asset keys of the models the report's exposure depends on."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    exposure = next(node for node in manifest["exposures"].values() if node["name"] == EXPOSURE)
    translator = DagsterDbtTranslator()
    nodes = {**manifest["nodes"], **manifest["sources"]}
    return [
        translator.get_asset_spec(manifest, unique_id, dbt_project).key
        for unique_id in exposure["depends_on"]["nodes"]
        if unique_id in nodes
    ]


def report_asset(settings: Settings, dbt_project: DbtProject) -> AssetsDefinition:
    @asset(
        key=AssetKey(EXPOSURE),
        deps=exposure_deps(dbt_project),
        group_name="report",
        kinds={"html"},
        description=f"The listening report, {settings.report}: src/sparkify/report/build_report.py",
    )
    def report(context: AssetExecutionContext) -> None:
        done = commands.run(["-m", "sparkify.report.build_report", "--out", str(settings.report)])
        if done.returncode != 0:
            raise Failure(
                description=f"build_report.py exit {done.returncode}: "
                f"{commands.last_line(done.stderr)}"
            )
        context.add_output_metadata({"path": str(settings.report)})

    return report
