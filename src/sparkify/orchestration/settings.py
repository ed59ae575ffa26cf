"""Where the pipeline reads and writes, from the environment (`make serve` sets it).

Every setting has the default `make run` uses, so the definitions load the same
in the daemon, the web UI and a test.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sparkify.checkout import REPO_ROOT

TARGETS = ("dev", "spark")  # profiles.yml.example's outputs: PostgreSQL, Spark
# The run-queue tag that keeps two runs off one warehouse (dagster.yaml's limit).
WAREHOUSE_TAG = "sparkify/warehouse"
# dbt's arguments in a scheduled run. Unit tests are left to CI and `make test`:
# their inputs are fixed in the model YAML, so a daily run would only repeat
# their answer (dbt's advice for production). benchmarks/spark.py times it.
SCHEDULED_BUILD = ("build", "--exclude-resource-type", "unit_test")


@dataclass(frozen=True)
class Settings:
    feed: str  # a folder or s3://bucket/prefix holding song_data/ and log_data/
    target: str  # dbt's target: dev (PostgreSQL) or spark
    lake: Path  # the Parquet lake of the spark target
    home: Path  # DAGSTER_HOME: dagster.yaml, logs, PIDs, each run's dbt output
    profiles_dir: Path
    report: Path
    schedule: str  # cron
    sensor_seconds: int
    webhook: str  # where a failed run is announced; empty: nowhere

    @property
    def dbt_target_path(self) -> Path:
        """The manifest the definitions are made from (one per target: the adapters differ)."""
        return self.home / f"dbt-{self.target}"

    @property
    def warehouse(self) -> str:
        """What one run builds: the run queue lets one run at a time per value."""
        if self.target == "spark":
            return f"spark:{self.lake}"
        where = os.environ.get("PGHOST", "") + ":" + os.environ.get("PGPORT", "")
        return f"postgres:{where}/{os.environ.get('PGDATABASE', 'sparkify')}"

    def loader_args(self) -> list[str]:
        feed = self.feed if self.feed.startswith("s3://") else str(Path(self.feed).resolve())
        lake = ["--lake", str(self.lake)] if self.target == "spark" else []
        return ["--data-dir", feed, *lake]


def _path(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "").strip()
    return (REPO_ROOT / value).resolve() if value else default


def load() -> Settings:
    target = os.environ.get("SPARKIFY_TARGET", "").strip() or "dev"
    if target not in TARGETS:
        raise ValueError(f"SPARKIFY_TARGET={target}: use one of {', '.join(TARGETS)}")
    feed = os.environ.get("SPARKIFY_FEED", "").strip() or os.environ.get("DATA_DIR", "").strip()
    home = _path("DAGSTER_HOME", REPO_ROOT / ".dagster")
    spark_dir = _path("SPARKIFY_SPARK_DIR", REPO_ROOT / ".spark")
    return Settings(
        feed=feed or str(REPO_ROOT / "data" / "sample"),
        target=target,
        lake=_path("SPARKIFY_LAKE", spark_dir / "lake"),
        home=home,
        profiles_dir=profiles_dir(),
        report=_path("SPARKIFY_REPORT", REPO_ROOT / "reports" / "index.html"),
        schedule=os.environ.get("SPARKIFY_SCHEDULE", "").strip() or "0 6 * * *",
        sensor_seconds=int(os.environ.get("SPARKIFY_SENSOR_SECONDS", "").strip() or 60),
        webhook=os.environ.get("SPARKIFY_ALERT_WEBHOOK", "").strip(),
    )


def profiles_dir() -> Path:
    """DBT_PROFILES_DIR, or .dbt/ with profiles.yml.example copied in (as make does)."""
    named = os.environ.get("DBT_PROFILES_DIR", "").strip()
    folder = Path(named) if named else REPO_ROOT / ".dbt"
    if not (folder / "profiles.yml").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "profiles.yml.example", folder / "profiles.yml")
    return folder
