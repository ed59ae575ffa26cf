"""The raw landing tables: a contract that the dbt sources and the checks rely on.

Every statement is idempotent, so the loader runs it on every start.
"""

from __future__ import annotations

import psycopg

# Why these shapes:
# - (source_file, line_number) is the primary key of every landing table, so
#   PostgreSQL itself refuses a line loaded twice.
# - rejects keep the line as bytea: a line that is not valid UTF-8, or holds a
#   NUL byte, cannot be stored as text, and nothing may be lost.
# - raw.load_manifest.mtime_ns (with size_bytes) is the file's modification stamp
#   when it was loaded: same size and stamp, the file is not read again.
# - raw.load_manifest.first_loaded_at is when the file was first loaded; it is
#   older than loaded_at once the file was replaced. Incremental dbt models read
#   it: a replaced file can take rows away, an appended one cannot.
# - raw.jsonb_error() tells, per line, why jsonb refuses a text; it is only
#   used on the slow path, for a chunk that COPY refused.
DDL = """
-- Not CREATE SCHEMA IF NOT EXISTS: that needs CREATE on the database even when
-- the schema exists, and a loader role (ingest/setup_roles.py) owns raw only.
do $$
begin
    if to_regnamespace('raw') is null then
        create schema raw;
    end if;
end
$$;

create table if not exists raw.load_manifest (
    source_file text primary key,
    source_kind text not null check (source_kind in ('songs', 'events')),
    checksum text not null,
    size_bytes bigint not null,
    row_count integer not null,
    reject_count integer not null,
    loaded_at timestamptz not null default now()
);

create table if not exists raw.songs (
    source_file text not null,
    line_number integer not null,
    payload jsonb not null,
    loaded_at timestamptz not null default now(),
    primary key (source_file, line_number)
);

create table if not exists raw.events (
    source_file text not null,
    line_number integer not null,
    payload jsonb not null,
    loaded_at timestamptz not null default now(),
    primary key (source_file, line_number)
);

create table if not exists raw.rejects (
    source_file text not null,
    line_number integer not null,
    line bytea not null,
    reason text not null check (
        reason in (
            'truncated', 'invalid_utf8', 'not_json', 'not_an_object', 'jsonb_refused'
        )
    ),
    detail text,
    rejected_at timestamptz not null default now(),
    primary key (source_file, line_number)
);

-- Added after the first release: existing landing databases get them on the next load.
-- Checked in the catalog first: ALTER TABLE ... IF NOT EXISTS and CREATE INDEX IF NOT
-- EXISTS lock the table before they look, so every load would wait behind (and block)
-- any open transaction on it, a dbt build's included.
do $upgrade$
begin
    -- mtime_ns with size_bytes lets a re-run skip an unchanged file without reading it.
    if not exists (
        select 1 from pg_attribute
        where attrelid = 'raw.load_manifest'::regclass
          and attname = 'mtime_ns' and not attisdropped
    ) then
        alter table raw.load_manifest add column mtime_ns bigint;
    end if;
    -- first_loaded_at: older than loaded_at once the file was replaced (null in
    -- manifests written before: then it is read as loaded_at).
    if not exists (
        select 1 from pg_attribute
        where attrelid = 'raw.load_manifest'::regclass
          and attname = 'first_loaded_at' and not attisdropped
    ) then
        alter table raw.load_manifest add column first_loaded_at timestamptz;
    end if;
    -- The warehouse's incremental models select the rows landed since their last run.
    if to_regclass('raw.events_loaded_at_idx') is null then
        create index events_loaded_at_idx on raw.events (loaded_at);
    end if;
    if to_regclass('raw.songs_loaded_at_idx') is null then
        create index songs_loaded_at_idx on raw.songs (loaded_at);
    end if;
end
$upgrade$;

create or replace function raw.jsonb_error(candidate text) returns text
language plpgsql immutable as $$
begin
    perform candidate::jsonb;
    return null;
exception when others then
    return sqlerrm;
end
$$;

comment on table raw.songs is
    'One row per song file (one JSON object each), loaded as-is by ingest/load_raw.py.';
comment on table raw.events is
    'One row per non-blank event log line, loaded as-is by ingest/load_raw.py.';
comment on table raw.rejects is
    'Every input line that could not be landed, with the bytes as read and the reason.';
comment on table raw.load_manifest is
    'One row per loaded file: its checksum decides whether a re-run loads it again.';
"""

LANDING_TABLES = {"songs": "songs", "events": "events"}


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema and its tables unless they exist."""
    with conn.transaction():
        # Two loaders starting at once would race on CREATE ... IF NOT EXISTS.
        conn.execute("select pg_advisory_xact_lock(hashtext('sparkify.raw.ddl'))")
        conn.execute(DDL)
