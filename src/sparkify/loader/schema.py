"""The raw landing tables: a contract that the dbt sources and the checks rely on.

Every statement is idempotent, so the loader runs it on every start.
"""

from __future__ import annotations

import psycopg

from sparkify.loader.columns import LINE_COLUMNS, LOADS_COLUMNS, REJECT_COLUMNS, create_table
from sparkify.loader.contract import (
    DDL_LOCK,
    JSONB_REFUSED,
    NOT_AN_OBJECT,
    REJECT_REASONS,
    SOURCE_KINDS,
    TOO_DEEP,
    TOO_LONG,
    sql_list,
)

# Why these shapes:
# - (source_file, line_number) is the primary key of every landing table, so
#   PostgreSQL itself refuses a line loaded twice.
# - rejects keep the line as bytea: a line that is not valid UTF-8, or holds a
#   NUL byte, cannot be stored as text, and nothing may be lost.
# - raw.load_manifest.mtime_ns (with size_bytes) is the file's modification stamp
#   when it was loaded: same size and stamp, the file is not read again. An
#   object in S3 adds its ETag (raw.load_manifest.etag) to the stamp.
# - raw.load_manifest.feed_root is where the file was loaded from (a folder, or
#   s3://bucket/prefix): a file of the same name from another feed is refused
#   rather than silently replaced (--replace-other-feed allows it).
# - raw.load_manifest.first_loaded_at is when the file was first loaded; it is
#   older than loaded_at once the file was replaced: a replaced file can take
#   rows away, an appended one cannot (raw.loads.replaced_file_count counts them,
#   and the files a prune load removed: the files whose rows were replaced or removed).
# - raw.loads: one row per committed batch transaction (a "load"), written in
#   the same transaction as its rows, so a load id in raw.loads means every row,
#   reject and manifest entry stamped with it is committed, and a killed batch
#   leaves neither. Every raw row, reject and manifest entry carries the load_id
#   that landed it (the manifest: the load of the file's current version). Ids
#   grow but are not dense (a rolled-back batch uses one up). load_id 0 is the
#   rows landed before load ids existed (databases upgraded from the loader
#   before them): its source_kind is null, the one row allowed to have none.
#   No foreign key from the raw tables: its per-row check would slow COPY, and
#   the loader writes both sides in one transaction.
# - No index on loaded_at or load_id: incremental readers select raw rows by
#   source_file (the files whose manifest load_id is new to them), which the
#   primary key serves; raw.loads and raw.load_manifest are small.
# - raw.line_refusal() tells, per line, why it cannot land (reason, detail),
#   or null; it is only used on the slow path, for lines that COPY refused.
#   It catches "stack depth limit exceeded" (too_deep) and jsonb's size limit
#   (too_long) too: no line can fail a batch. (raw.jsonb_error(), its
#   predecessor, is kept for databases whose readers may call it.)
# - raw.rejects.reason is checked against contract.REJECT_REASONS; a database made with
#   fewer reasons gets the new check on the next start (see the upgrade below).
_REASON_LIST = sql_list(REJECT_REASONS)
_REASON_PATTERNS = ", ".join(f"'%''{reason}''%'" for reason in REJECT_REASONS)
_KIND_LIST = sql_list(SOURCE_KINDS)
# Columns of raw.load_manifest added after the first release, in the order
# added: an existing landing database gets them on its next load (see the
# upgrade step of the DDL). (load_id, added to every table at once with its
# load 0, has a step of its own.)
ADDED_MANIFEST_COLUMNS = (
    ("mtime_ns", "bigint"),  # with size_bytes: skip an unchanged file without reading it
    ("first_loaded_at", "timestamptz"),  # null in manifests before it: read as loaded_at
    ("etag", "text"),  # an object's ETag: with size and mtime_ns its stamp
    ("feed_root", "text"),  # null: loaded before it was kept
)
_ADDED_COLUMNS = ",\n".join(
    f"            ({sql_list(column)})" for column in ADDED_MANIFEST_COLUMNS
)

_LINE_KEY = "primary key (source_file, line_number)"

_DDL_TEMPLATE = """
-- Not CREATE SCHEMA IF NOT EXISTS: that needs CREATE on the database even when
-- the schema exists, and a loader role (src/sparkify/roles.py) owns raw only.
do $$
begin
    if to_regnamespace('raw') is null then
        create schema raw;
    end if;
end
$$;

@CREATE_LOADS@

create table if not exists raw.load_manifest (
    source_file text primary key,
    source_kind text not null check (source_kind in (@KIND_LIST@)),
    checksum text not null,
    size_bytes bigint not null,
    row_count integer not null,
    reject_count integer not null,
    loaded_at timestamptz not null default now(),
    load_id bigint not null
);

@CREATE_SONGS@

@CREATE_EVENTS@

@CREATE_REJECTS@

-- Added after the first release: existing landing databases get them on the next load.
-- Checked in the catalog first: ALTER TABLE ... IF NOT EXISTS and CREATE INDEX IF NOT
-- EXISTS lock the table before they look, so every load would wait behind (and block)
-- any open transaction on it, a dbt build's included.
do $upgrade$
declare
    added record;
begin
    -- Columns of raw.load_manifest added after the first release (why: above).
    for added in
        select * from (values
@ADDED_COLUMNS@
        ) as a (column_name, column_type)
    loop
        if not exists (
            select 1 from pg_attribute
            where attrelid = 'raw.load_manifest'::regclass
              and attname = added.column_name and not attisdropped
        ) then
            execute format(
                'alter table raw.load_manifest add column %I %s',
                added.column_name, added.column_type
            );
        end if;
    end loop;
    -- load_id: tables written before load ids existed get it with default 0 (a
    -- catalog change, no rewrite), their rows are load 0, and the default is then
    -- dropped, so every new row must name its load.
    if not exists (
        select 1 from pg_attribute
        where attrelid = 'raw.events'::regclass
          and attname = 'load_id' and not attisdropped
    ) then
        alter table raw.load_manifest add column load_id bigint not null default 0;
        alter table raw.events add column load_id bigint not null default 0;
        alter table raw.songs add column load_id bigint not null default 0;
        alter table raw.rejects add column load_id bigint not null default 0;
        alter table raw.load_manifest alter column load_id drop default;
        alter table raw.events alter column load_id drop default;
        alter table raw.songs alter column load_id drop default;
        alter table raw.rejects alter column load_id drop default;
        -- Load 0 describes what is there: the manifest's counts of its files.
        insert into raw.loads (
            load_id, source_kind, file_count, row_count, reject_count,
            replaced_file_count, loaded_at
        )
        select
            0, null, count(*), coalesce(sum(row_count), 0),
            coalesce(sum(reject_count), 0), 0, coalesce(max(loaded_at), now())
        from raw.load_manifest
        on conflict (load_id) do nothing;
    end if;
    -- Dropped: readers no longer select raw rows by loaded_at (see above).
    if to_regclass('raw.events_loaded_at_idx') is not null then
        drop index raw.events_loaded_at_idx;
    end if;
    if to_regclass('raw.songs_loaded_at_idx') is not null then
        drop index raw.songs_loaded_at_idx;
    end if;
    -- New reasons (too_long, too_deep, cr_line_breaks): the check is replaced
    -- when it lacks one. NOT VALID, then VALIDATE: the scan of the existing
    -- rejects runs under a lock that lets readers and loads go on.
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'raw.rejects'::regclass
          and conname = 'rejects_reason_check'
          and pg_get_constraintdef(oid) like all (array[@REASON_PATTERNS@])
    ) then
        alter table raw.rejects drop constraint if exists rejects_reason_check;
        alter table raw.rejects add constraint rejects_reason_check
            check (reason in (@REASON_LIST@)) not valid;
        alter table raw.rejects validate constraint rejects_reason_check;
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

create or replace function raw.line_refusal(candidate text) returns text[]
language plpgsql immutable as $$
declare
    value jsonb;
begin
    value := candidate::jsonb;
    if jsonb_typeof(value) <> 'object' then
        return array['@NOT_AN_OBJECT@', 'a JSON ' || jsonb_typeof(value) || ', not an object'];
    end if;
    return null;
exception
    when statement_too_complex then  -- stack depth limit exceeded
        return array['@TOO_DEEP@', sqlerrm];
    when program_limit_exceeded then  -- e.g. a string over jsonb's 256 MB
        return array['@TOO_LONG@', sqlerrm];
    when others then
        return array['@JSONB_REFUSED@', sqlerrm];
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
comment on table raw.loads is
    'One row per committed load (a batch transaction of ingest/load_raw.py), '
    'written in the same transaction as the rows, rejects and manifest rows '
    'stamped with its load_id. Load 0: rows landed before load ids existed.';
"""
# The values the DDL shares with Python, filled into its template.
_SHARED = {
    "@CREATE_LOADS@": create_table(
        "raw.loads",
        LOADS_COLUMNS,
        "-- Only load 0 (rows landed before load ids existed) is of no single kind.\n"
        "    constraint loads_kind_given check (source_kind is not null or load_id = 0)",
    ),
    "@CREATE_SONGS@": create_table("raw.songs", LINE_COLUMNS, _LINE_KEY),
    "@CREATE_EVENTS@": create_table("raw.events", LINE_COLUMNS, _LINE_KEY),
    "@CREATE_REJECTS@": create_table("raw.rejects", REJECT_COLUMNS, _LINE_KEY),
    "@REASON_LIST@": _REASON_LIST,
    "@REASON_PATTERNS@": _REASON_PATTERNS,
    "@KIND_LIST@": _KIND_LIST,
    "@ADDED_COLUMNS@": _ADDED_COLUMNS,
    "@NOT_AN_OBJECT@": NOT_AN_OBJECT,
    "@TOO_DEEP@": TOO_DEEP,
    "@TOO_LONG@": TOO_LONG,
    "@JSONB_REFUSED@": JSONB_REFUSED,
}
for _placeholder, _value in _SHARED.items():
    _DDL_TEMPLATE = _DDL_TEMPLATE.replace(_placeholder, _value)
DDL = _DDL_TEMPLATE


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema and its tables unless they exist."""
    with conn.transaction():
        # Two loaders starting at once would race on CREATE ... IF NOT EXISTS.
        conn.execute("select pg_advisory_xact_lock(hashtext(%s))", [DDL_LOCK])
        conn.execute(DDL)
