"""What the loader's Python and the warehouse's SQL both spell out, said once.

schema.py builds the landing tables' checks from these values, the loader's
code uses them by name, and tests/python/unit/test_loader.py checks that the
dbt YAML (accepted_values) lists the same ones.
"""

from __future__ import annotations

# The kinds of source file, each landing in raw.<kind> (raw.loads.source_kind,
# raw.load_manifest.source_kind).
SONGS = "songs"
EVENTS = "events"
SOURCE_KINDS = (SONGS, EVENTS)
# The folder (or s3:// prefix) of each kind under a feed's root; a file's name
# (raw.*.source_file) starts with it: 'log_data/2018/11/2018-11-01-events.json'.
FEED_FOLDERS = {SONGS: "song_data", EVENTS: "log_data"}

# Why a line is rejected (raw.rejects.reason; raw.line_refusal() returns the
# last three from SQL).
TRUNCATED = "truncated"
INVALID_UTF8 = "invalid_utf8"
NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
JSONB_REFUSED = "jsonb_refused"
TOO_LONG = "too_long"
TOO_DEEP = "too_deep"
CR_LINE_BREAKS = "cr_line_breaks"
REJECT_REASONS = (
    TRUNCATED,
    INVALID_UTF8,
    NOT_JSON,
    NOT_AN_OBJECT,
    JSONB_REFUSED,
    TOO_LONG,
    TOO_DEEP,
    CR_LINE_BREAKS,
)

# Advisory lock names, hashed by the server (hashtext) into lock keys: one
# loader at a time per database; the workers of a loader (held shared); two
# loaders creating the schema at once.
LOAD_LOCK = "sparkify.load_raw"
WORKER_LOCK = "sparkify.load_raw.worker"
DDL_LOCK = "sparkify.raw.ddl"


def sql_list(values: tuple[str, ...]) -> str:
    """The values as an SQL list of string literals: 'a', 'b'. Only for the
    constants above (no quote in them), never for input."""
    if any("'" in value for value in values):
        raise ValueError(f"a quote in a constant: {values}")
    return ", ".join(f"'{value}'" for value in values)
