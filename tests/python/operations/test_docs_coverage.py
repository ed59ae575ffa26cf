"""The docs are complete and the project keeps its rules, checked over the manifest.json
and catalog.json that `dbt docs generate` writes (src/sparkify/checks/docs_check.py holds the rules)
for a warehouse built on the demo feed. unit/test_docs_checks.py shows, with no server, that
each rule does fail when broken.
"""

from __future__ import annotations

import pytest

from helpers import connect
from sparkify.checks.docs_check import (
    coverage,
    coverage_table,
    load_artifacts,
    problems,
)

pytestmark = pytest.mark.slow  # a real server: PostgreSQL, dbt

MARTS = ("songplays", "users", "songs", "artists", "time")


@pytest.fixture(scope="module")
def artifacts(built_site) -> tuple[dict, dict]:
    return load_artifacts(built_site.target)


def _node(manifest: dict, name: str, resource_type: str = "model") -> dict:
    return next(
        node
        for node in manifest["nodes"].values()
        if node["name"] == name and node["resource_type"] == resource_type
    )


def test_every_source_model_column_macro_and_seed_is_documented(artifacts):
    manifest, catalog = artifacts
    rows = coverage(manifest, catalog)
    print(coverage_table(rows))
    counted = {row.kind: row.total for row in rows}
    # The coverage counts what exists: the database's columns, not only the YAML's.
    for kind in ("sources", "source columns", "models", "model columns", "seeds", "macros"):
        assert counted[kind] > 0, kind
    assert counted["model columns"] >= sum(
        len(entry["columns"])
        for uid, entry in catalog["nodes"].items()
        if uid.startswith("model.sparkify.")
    )
    undocumented = {row.kind: row.missing for row in rows if row.missing}
    assert undocumented == {}


def test_project_keeps_every_docs_rule(artifacts):
    manifest, catalog = artifacts
    assert problems(manifest, catalog) == []


def test_every_report_model_states_its_question_and_feeds_the_exposure(artifacts):
    manifest, _ = artifacts
    reports = {
        node["unique_id"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["original_file_path"].startswith("models/reports/")
    }
    assert len(reports) >= 8
    for uid in reports:
        assert manifest["nodes"][uid]["description"].startswith("**Question:"), uid
    exposure = manifest["exposures"]["exposure.sparkify.sparkify_listening_report"]
    assert set(exposure["depends_on"]["nodes"]) == reports
    assert exposure["type"] == "dashboard"
    # Every mart feeds the report, directly or through a rollup; but time, whose
    # parts the rollups read from start_time.
    upstream, frontier = set(), set(reports)
    while frontier:
        parents = {
            p
            for uid in frontier
            for p in manifest["nodes"][uid].get("depends_on", {}).get("nodes", [])
        }
        frontier = {p for p in parents if p in manifest["nodes"]} - upstream
        upstream |= parents
    marts = {_node(manifest, mart)["unique_id"] for mart in MARTS}
    assert marts - {_node(manifest, "time")["unique_id"]} <= upstream


def test_marts_and_reports_carry_their_descriptions_into_the_database(built_site, artifacts):
    """What an analyst sees with \\d+ analytics.songplays: the dbt descriptions."""
    manifest, _ = artifacts
    models = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] in ("analytics", "reports")
    ]
    assert set(MARTS) <= {node["name"] for node in models}
    with connect(built_site.env) as conn:
        for node in models:
            relation = f'{node["schema"]}."{node["name"]}"'
            table_comment = conn.execute(
                "select obj_description(%s::regclass, 'pg_class')", [relation]
            ).fetchone()[0]
            assert (table_comment or "").strip() == node["description"].strip(), relation
            column_comments = dict(
                conn.execute(
                    "select attname, col_description(attrelid, attnum) from pg_attribute "
                    "where attrelid = %s::regclass and attnum > 0 and not attisdropped",
                    [relation],
                ).fetchall()
            )
            for name, column in node["columns"].items():
                assert (column_comments[name] or "").strip() == column["description"].strip(), (
                    relation,
                    name,
                )
