"""When the pipeline runs: every day (a schedule), when the feed has new or
changed files (a sensor that asks the loader's own planning, `load_raw.py
--plan`), and what happens when a run fails (one alert to a webhook)."""

import hashlib
import json
import urllib.request

from dagster import (
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from sparkify.orchestration import commands
from sparkify.orchestration.settings import Settings


def daily_schedule(job_name: str, settings: Settings) -> ScheduleDefinition:
    return ScheduleDefinition(
        name="sparkify_daily",
        job_name=job_name,
        cron_schedule=settings.schedule,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"The whole pipeline at {settings.schedule} (UTC; SPARKIFY_SCHEDULE)",
    )


def feed_sensor(job_name: str, settings: Settings) -> SensorDefinition:
    @sensor(
        name="sparkify_feed",
        job_name=job_name,
        minimum_interval_seconds=settings.sensor_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"A run when {settings.feed} has files the loader would load "
        "(load_raw.py --plan)",
    )
    def sparkify_feed(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        try:
            _, plan = commands.loader_json([*settings.loader_args(), "--plan"])
        except commands.CommandFailed as failed:
            return SkipReason(f"load_raw.py --plan exit {failed.exit_code}: {failed.said}")
        new = plan["to_load"]
        if not new:
            return SkipReason(f"feed unchanged: {plan['files_found']} files, all loaded")
        # One run per set of new files: while that run waits in the queue or
        # runs, the same plan asks for no second one.
        run_key = hashlib.sha256(json.dumps(new, sort_keys=True).encode()).hexdigest()
        names = ", ".join(item["file"] for item in new[:3]) + (", ..." if len(new) > 3 else "")
        context.log.info("%d new or changed files: %s", len(new), names)
        return RunRequest(run_key=run_key, tags={"sparkify/new_files": str(len(new))})

    return sparkify_feed


def alert_sensor(settings: Settings) -> SensorDefinition:
    @run_failure_sensor(
        name="sparkify_alert",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=min(settings.sensor_seconds, 30),
        description="One POST to SPARKIFY_ALERT_WEBHOOK per failed run",
    )
    def sparkify_alert(context: RunFailureSensorContext) -> None:
        run = context.dagster_run
        alert = {
            "text": f"Sparkify run {run.run_id} of {run.job_name} failed: "
            f"{context.failure_event.message}",
            "run_id": run.run_id,
            "job": run.job_name,
            "message": context.failure_event.message,
        }
        if not settings.webhook:
            context.log.warning("no SPARKIFY_ALERT_WEBHOOK: the failure is not announced")
            return
        request = urllib.request.Request(
            settings.webhook,
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    return sparkify_alert
