"""The docs are complete and the project keeps its rules, checked over the manifest.json
and catalog.json that `dbt docs generate` writes (checks/docs_check.py holds the rules).

The first tests hold the real project to them; the rest doctor a copy of its manifest
to show that each rule does fail when broken.
"""

from __future__ import annotations

import copy

import pytest

from checks.docs_check import (
    coverage,
    coverage_table,
    hard_coded_relations,
    layer_problems,
    load_artifacts,
    primary_key_problems,
    problems,
    repeated_wording,
)
from helpers import connect

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


# --- each rule fails when broken --------------------------------------------------


def test_a_missing_description_is_caught(artifacts):
    manifest, catalog = copy.deepcopy(artifacts[0]), artifacts[1]
    _node(manifest, "songplays")["columns"]["user_agent"]["description"] = ""
    manifest["macros"]["macro.sparkify.surrogate_key"]["description"] = " "
    assert {
        "undocumented model column: songplays.user_agent",
        "undocumented macro: surrogate_key",
    } <= set(problems(manifest, catalog))


def test_a_database_column_the_yaml_does_not_name_is_undocumented(artifacts):
    manifest, catalog = artifacts[0], copy.deepcopy(artifacts[1])
    uid = _node(manifest, "users")["unique_id"]
    catalog["nodes"][uid]["columns"]["favourite_colour"] = {"name": "favourite_colour"}
    assert "undocumented model column: users.favourite_colour" in problems(manifest, catalog)


def test_a_primary_key_neither_enforced_nor_tested_is_caught(artifacts):
    """PostgreSQL holds the marts' keys (an enforced primary key, a unique index), so
    they need no tests; without the contract or the index, the missing tests show."""
    manifest = copy.deepcopy(artifacts[0])
    assert primary_key_problems(manifest) == []
    for name in ("songs", "rpt_plays_by_hour_weekday"):
        _node(manifest, name)["contract"]["enforced"] = False
    _node(manifest, "int_events_deduplicated")["config"]["indexes"] = []
    hour_weekday = _node(manifest, "rpt_plays_by_hour_weekday")["unique_id"]
    for uid, node in list(manifest["nodes"].items()):
        if node["resource_type"] == "test" and hour_weekday in node["depends_on"]["nodes"]:
            del manifest["nodes"][uid]
    found = primary_key_problems(manifest)
    assert "songs: primary key ['song_id'] has no uniqueness test" in found
    assert "songs: primary key column song_id has no not_null test" in found
    assert (
        "rpt_plays_by_hour_weekday: primary key ['hour', 'weekday'] has no uniqueness test" in found
    )
    assert "rpt_plays_by_hour_weekday: primary key column hour has no not_null test" in found
    assert "int_events_deduplicated: no primary key (no key constraint or tests)" in found


def test_a_source_read_outside_staging_and_staging_reading_staging_are_caught(artifacts):
    manifest = copy.deepcopy(artifacts[0])
    _node(manifest, "songplays")["depends_on"]["nodes"].append("source.sparkify.sparkify.events")
    songs_stage = _node(manifest, "stg_sparkify__songs")["unique_id"]
    _node(manifest, "stg_sparkify__events")["depends_on"]["nodes"].append(songs_stage)
    assert layer_problems(manifest) == [
        "songplays: reads source source.sparkify.sparkify.events outside staging",
        f"stg_sparkify__events: staging model reads staging {songs_stage}",
    ]


def test_hard_coded_relation_names_are_caught(artifacts):
    manifest = copy.deepcopy(artifacts[0])
    _node(manifest, "rpt_sessions")["raw_code"] = (
        "with plays as (select * from {{ ref('songplays') }})\n"
        "select * from plays join analytics.users using (user_id)"
    )
    _node(manifest, "rpt_top_songs")["raw_code"] = "select * from songplays -- no ref"
    # A CTE named after a relation is fine, and so are names in comments and strings.
    _node(manifest, "rpt_top_artists")["raw_code"] = (
        "with songplays as (select * from {{ ref('songplays') }})\n"
        "-- from raw.events\nselect 'from staging.x' as note from songplays"
    )
    found = hard_coded_relations(manifest)
    assert any(p.startswith("rpt_sessions: schema-qualified name 'analytics.u") for p in found)
    assert "rpt_top_songs: reads relation 'songplays' without ref()/source()" in found
    assert not [p for p in found if p.startswith("rpt_top_artists")]


def test_wording_copied_instead_of_a_doc_block_is_caught(artifacts):
    manifest = copy.deepcopy(artifacts[0])
    text = "The number of plays, counted after every redelivered copy was removed."
    _node(manifest, "rpt_sessions")["columns"]["play_count"]["description"] = text
    _node(manifest, "rpt_churn_signals")["columns"]["prior_play_count"]["description"] = text
    found = repeated_wording(manifest)
    assert len(found) == 1
    assert "rpt_sessions.play_count" in found[0]
    assert "rpt_churn_signals.prior_play_count" in found[0]
