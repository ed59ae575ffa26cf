"""The Sparkify pipeline under Dagster: the raw load, every dbt model, the report.

definitions.py is the code location (assets, job, schedule, sensors); serve.py
starts and stops the web UI and daemon (`make serve`, `make stop-serve`). How to
run it daily: docs/operations.md, "Every day, by itself".

The modules that define assets and sensors (raw, warehouse, report, triggers) do
without `from __future__ import annotations`: Dagster checks the class of a
`context` parameter's annotation when it makes the definition.
"""
