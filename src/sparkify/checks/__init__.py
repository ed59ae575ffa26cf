"""Project checks that need no server: the docs rules over dbt's manifest (docs_check.py)."""
