"""The Sparkify warehouse's Python side: the loader, the demo-feed generator, the
embedded PostgreSQL and the Spark cluster, the report, the docs checks and the
Dagster definitions. The dbt project is the checkout around it."""
