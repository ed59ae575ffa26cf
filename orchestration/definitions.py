"""The code location: `dagster-webserver -m orchestration.definitions` (make serve).

One job, `sparkify`: the raw load, every dbt model with its tests, the report;
the same definitions build the `spark` target with SPARKIFY_TARGET=spark.
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job
from dagster_dbt import get_asset_keys_by_output_name_for_source

from orchestration import settings as settings_module
from orchestration.raw import raw_assets
from orchestration.report import report_asset
from orchestration.settings import WAREHOUSE_TAG
from orchestration.triggers import alert_sensor, daily_schedule, feed_sensor
from orchestration.warehouse import dbt_resource, project, warehouse_assets

settings = settings_module.load()
dbt_project = project(settings)
dbt_build = warehouse_assets(settings, dbt_project)
raw_load = raw_assets(get_asset_keys_by_output_name_for_source([dbt_build], "sparkify"), settings)
assets = [raw_load, dbt_build]
if settings.target == "dev":  # build_report.py reads PostgreSQL's reports schema
    assets.append(report_asset(settings, dbt_project))

sparkify_job = define_asset_job(
    "sparkify",
    selection=AssetSelection.all(),
    description="The feed -> raw load -> dbt build (models, tests) -> report",
    # The run queue (dagster.yaml) lets one run at a time per warehouse.
    tags={WAREHOUSE_TAG: settings.warehouse},
)

defs = Definitions(
    assets=assets,
    jobs=[sparkify_job],
    schedules=[daily_schedule(sparkify_job.name, settings)],
    sensors=[feed_sensor(sparkify_job.name, settings), alert_sensor(settings)],
    resources={"dbt": dbt_resource(settings, dbt_project)},
)
