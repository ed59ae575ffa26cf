"""The definitions: one job, `sparkify` (the raw load, every dbt model with its
tests, the report), its schedule and sensors. The same definitions build the
`spark` target when the settings say SPARKIFY_TARGET=spark."""

from dagster import (
    AssetsDefinition,
    AssetSelection,
    Definitions,
    define_asset_job,
    in_process_executor,
)
from dagster_dbt import get_asset_keys_by_output_name_for_source

from sparkify.orchestration.raw import raw_assets
from sparkify.orchestration.report import report_asset
from sparkify.orchestration.settings import WAREHOUSE_TAG, Settings
from sparkify.orchestration.triggers import alert_sensor, daily_schedule, feed_sensor
from sparkify.orchestration.warehouse import dbt_resource, project, warehouse_assets

JOB = "sparkify"


def build_definitions(settings: Settings) -> Definitions:
    dbt_project = project(settings)
    dbt_build = warehouse_assets(settings, dbt_project)
    landing = get_asset_keys_by_output_name_for_source([dbt_build], "sparkify")
    assets: list[AssetsDefinition] = [raw_assets(landing, settings), dbt_build]
    if settings.target == "dev":  # build_report.py reads PostgreSQL's reports schema
        assets.append(report_asset(settings, dbt_project))
    job = define_asset_job(
        JOB,
        selection=AssetSelection.all(),
        description="The feed -> raw load -> dbt build (models, tests) -> report",
        # The run queue (dagster.yaml) lets one run at a time per warehouse.
        tags={WAREHOUSE_TAG: settings.warehouse},
    )
    return Definitions(
        assets=assets,
        jobs=[job],
        schedules=[daily_schedule(JOB, settings)],
        sensors=[feed_sensor(JOB, settings), alert_sensor(settings)],
        resources={"dbt": dbt_resource(settings, dbt_project)},
        # One process per run, not per step (docs/operations.md, make serve).
        executor=in_process_executor,
    )
