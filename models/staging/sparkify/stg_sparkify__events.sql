{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'files'},
        on_schema_change='fail',
        indexes=[
            {'columns': ['source_file', 'line_number'], 'unique': true},
            {'columns': ['event_id']},
        ],
    )
}}

-- One row per landed line, parsed once: a table, because parsing jsonb is
-- most of the warehouse's cost and every later model and test reads these
-- columns. Incremental by file: a build parses the files of the new loads
-- (a replaced file's lines are all parsed again).
-- Redelivered copies are still separate rows here; int_events_deduplicated
-- makes them one event.

{%- set payload_fields = [
    'userId', 'sessionId', 'itemInSession', 'ts', 'length', 'status',
    'registration', 'firstName', 'lastName', 'gender', 'level', 'location',
    'userAgent', 'auth', 'page', 'method', 'song', 'artist',
] %}

with

source as (
    select
        source_file,
        line_number,
        payload,
        loaded_at
    from {{ source('sparkify', 'events') }}
    where {{ touched('source_file') }}
),

-- The payload parsed once, for every field below (on PostgreSQL it was
-- parsed when it landed, as jsonb).
parsed as (
    select
        source_file,
        line_number,
        loaded_at,
        {{ parse_json_object('payload', payload_fields) }} as payload_json
    from source
),

-- Every field is read as text first: a damaged feed can put any JSON type
-- in any field, and no value may fail the build.
fields as (
    select
        source_file,
        line_number,
        loaded_at,
        trim({{ json_field('payload_json', 'userId') }}) as user_id_text,
        trim({{ json_field('payload_json', 'sessionId') }}) as session_id_text,
        trim({{ json_field('payload_json', 'itemInSession') }}) as item_text,
        trim({{ json_field('payload_json', 'ts') }}) as ts_text,
        trim({{ json_field('payload_json', 'length') }}) as length_text,
        trim({{ json_field('payload_json', 'status') }}) as status_text,
        trim({{ json_field('payload_json', 'registration') }})
            as registration_text,
        nullif(trim({{ json_field('payload_json', 'firstName') }}), '')
            as first_name_as_logged,
        nullif(trim({{ json_field('payload_json', 'lastName') }}), '')
            as last_name_as_logged,
        upper(nullif(trim({{ json_field('payload_json', 'gender') }}), ''))
            as gender,
        lower(nullif(trim({{ json_field('payload_json', 'level') }}), ''))
            as level,
        nullif(trim({{ json_field('payload_json', 'location') }}), '')
            as location_as_logged,
        nullif(trim({{ json_field('payload_json', 'userAgent') }}), '')
            as user_agent_text,
        nullif(trim({{ json_field('payload_json', 'auth') }}), '') as auth,
        nullif(trim({{ json_field('payload_json', 'page') }}), '') as page,
        nullif(trim({{ json_field('payload_json', 'method') }}), '') as method,
        nullif(trim({{ json_field('payload_json', 'song') }}), '')
            as song_title_as_logged,
        nullif(trim({{ json_field('payload_json', 'artist') }}), '')
            as artist_name_as_logged
    from parsed
),

-- The feed often encodes text as UTF-8 two times over ("DÃ\u0083Â©sir" for
-- "Désir"), while the song files are clean: undo up to two levels, one per
-- step, so that names read right and plays can match their songs.
text_repaired_once as (
    select
        *,
        {{ repair_mojibake('first_name_as_logged') }} as first_name_once,
        {{ repair_mojibake('last_name_as_logged') }} as last_name_once,
        {{ repair_mojibake('location_as_logged') }} as location_once,
        {{ repair_mojibake('song_title_as_logged') }} as song_title_once,
        {{ repair_mojibake('artist_name_as_logged') }} as artist_name_once
    from fields
    {{ optimization_fence() }}
),

text_repaired as (
    select
        *,
        {{ repair_mojibake('first_name_once') }} as first_name,
        {{ repair_mojibake('last_name_once') }} as last_name,
        {{ repair_mojibake('location_once') }} as location,
        {{ repair_mojibake('song_title_once') }} as song_title,
        {{ repair_mojibake('artist_name_once') }} as artist_name
    from text_repaired_once
    {{ optimization_fence() }}
),

numbers as (
    select
        *,
        {{ safe_to_numeric('user_id_text') }} as user_id_number,
        {{ safe_to_numeric('session_id_text') }} as session_id_number,
        {{ safe_to_numeric('item_text') }} as item_number,
        {{ safe_to_numeric('ts_text') }} as ts_number,
        {{ safe_to_numeric('length_text') }} as song_length,
        {{ safe_to_numeric('status_text') }} as status_number,
        {{ safe_to_numeric('registration_text') }} as registration_number,
        {{ text_match_key('song_title') }} as song_match_key,
        {{ text_match_key('artist_name') }} as artist_match_key
    from text_repaired
    -- Parse each field once per row, however often its result is used.
    {{ optimization_fence() }}
),

typed as (
    select
        *,
        -- A numeric user id is written as its whole-number text, so 39,
        -- "39" and 39.0 are the same user; "" (logged out) becomes null.
        coalesce(
            cast(
                {{ to_integer_or_null('user_id_number', 'bigint') }}
                as {{ text_type() }}
            ),
            nullif({{ id_or_null('user_id_text') }}, '')
        ) as user_id,
        {{ to_integer_or_null('session_id_number') }} as session_id,
        {{ to_integer_or_null('item_number') }} as item_in_session,
        {{ to_integer_or_null('ts_number', 'bigint') }} as ts_ms,
        {{ to_integer_or_null('status_number') }} as status,
        {{ epoch_ms_to_timestamp('registration_number') }} as registered_at,
        {{ strip_wrapping_quotes('user_agent_text') }} as user_agent
    from numbers
),

-- The parts of the event's natural identity. A value that does not parse
-- takes part as its raw text, so distinct damaged rows stay apart while a
-- line delivered twice still gets the same key.
natural_identity as (
    select
        *,
        coalesce(
            cast(session_id as {{ text_type() }}), session_id_text
        ) as session_key,
        coalesce(
            cast(item_in_session as {{ text_type() }}), item_text
        ) as item_key,
        coalesce(cast(ts_ms as {{ text_type() }}), ts_text) as ts_key
    from typed
),

keyed as (
    select
        *,
        {{ surrogate_key([
            'user_id', 'session_key', 'item_key', 'ts_key',
        ]) }} as event_id,
        {{ epoch_ms_to_timestamp('ts_ms') }} as event_at
    from natural_identity
),

flagged as (
    select
        *,
        coalesce(page = 'NextSong', false) as is_song_play,
        event_at is not null as has_valid_ts,
        (
            session_id_text is null or session_id is not null
        ) as has_valid_session_id,
        (
            item_text is null or item_in_session is not null
        ) as has_valid_item_in_session,
        (
            length_text is null or song_length is not null
        ) as has_valid_length,
        (status_text is null or status is not null) as has_valid_status,
        (user_id_text is null or user_id is not null or user_id_text = '')
            as has_valid_user_id,
        (
            song_title is distinct from song_title_as_logged
            or artist_name is distinct from artist_name_as_logged
            or location is distinct from location_as_logged
            or first_name is distinct from first_name_as_logged
            or last_name is distinct from last_name_as_logged
        ) as is_text_repaired,
        (
            registration_text is null or registered_at is not null
        ) as has_valid_registration
    from keyed
),

final as (
    select
        source_file,
        line_number,
        event_id,
        user_id,
        session_id,
        item_in_session,
        first_name,
        last_name,
        gender,
        level,
        location,
        user_agent,
        auth,
        page,
        method,
        song_title,
        artist_name,
        song_title_as_logged,
        artist_name_as_logged,
        song_match_key,
        artist_match_key,
        song_length,
        status,
        is_song_play,
        is_text_repaired,
        has_valid_ts,
        has_valid_user_id,
        has_valid_session_id,
        has_valid_item_in_session,
        has_valid_length,
        has_valid_status,
        has_valid_registration,
        event_at,
        registered_at,
        loaded_at
    from flagged
)

select * from final
