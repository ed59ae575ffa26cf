"""The code location: `dagster-webserver -m sparkify.orchestration.definitions` (make serve),
its settings from the environment (src/sparkify/orchestration/settings.py)."""

from sparkify.orchestration import settings
from sparkify.orchestration.pipeline import build_definitions

defs = build_definitions(settings.load())
