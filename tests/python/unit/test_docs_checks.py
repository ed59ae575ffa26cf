"""Each docs rule of src/sparkify/checks/docs_check.py fails when broken: a copy of a small manifest
and catalog (tests/python/fixtures/dbt, a few models of every layer, trimmed from the
project's by fixtures/trim_dbt_artifacts.py) is doctored one rule at a time. No server:
operations/test_docs_coverage.py holds the real, built project to the same rules.
"""

from __future__ import annotations

import copy

import pytest

from sparkify.checkout import REPO_ROOT
from sparkify.checks.docs_check import (
    hard_coded_relations,
    layer_problems,
    load_artifacts,
    primary_key_problems,
    problems,
    repeated_wording,
)

FIXTURE = REPO_ROOT / "tests" / "python" / "fixtures" / "dbt"


@pytest.fixture(scope="module")
def artifacts() -> tuple[dict, dict]:
    return load_artifacts(FIXTURE)


def _node(manifest: dict, name: str, resource_type: str = "model") -> dict:
    return next(
        node
        for node in manifest["nodes"].values()
        if node["name"] == name and node["resource_type"] == resource_type
    )


def test_the_fixture_keeps_every_rule(artifacts):
    """The starting point: what the tests below break holds here."""
    assert problems(*artifacts) == []


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
