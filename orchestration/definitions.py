"""The code location: `dagster-webserver -m orchestration.definitions` (make serve),
its settings from the environment (orchestration/settings.py)."""

from orchestration import settings
from orchestration.pipeline import build_definitions

defs = build_definitions(settings.load())
