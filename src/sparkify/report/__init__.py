"""The static HTML report over the report models (build_report.py) and its SVG charts."""
