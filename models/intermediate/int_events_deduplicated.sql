{{
    config(
        materialized='incremental',
        unique_key='event_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['last_loaded_at']},
            {'columns': ['user_id']},
            {'columns': ['event_at']},
        ],
        pre_hook=[
            "{{ wait_for_loads() }}",
            "{{ record_watermark('last_loaded_at') }}",
            "{{ rebuild_all_if_files_replaced('last_loaded_at') }}",
        ],
        post_hook=["{{ refresh_statistics() }}"],
    )
}}

-- One row per event: a line delivered twice (the same day file under
-- another name, or the same line twice) is one event, identified by
-- event_id. An incremental build recomputes only the events that have a line
-- landed since the last build. A replaced file can take lines away, and so
-- change which copy is kept or leave an event without any line: when a file
-- was replaced since the last build, a pre-hook empties the table and every
-- event is computed again.

-- The CTEs inside the is_incremental() blocks sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

with

{% if is_incremental() %}

changed_events as (
    select distinct landed.event_id
    from {{ ref('stg_sparkify__events') }} as landed
    where landed.loaded_at > {{ incremental_watermark('last_loaded_at') }}
),

event_lines as (
    select landed.*
    from {{ ref('stg_sparkify__events') }} as landed
    inner join changed_events
        on landed.event_id = changed_events.event_id
),

{% else %}

event_lines as (
    select * from {{ ref('stg_sparkify__events') }}
),

{% endif %}

deliveries as (
    select
        *,
        cast(count(*) over (partition by event_id) as integer)
            as delivery_count,
        min(loaded_at) over (partition by event_id) as first_loaded_at,
        max(loaded_at) over (partition by event_id) as last_loaded_at,
        -- The copy kept is the one from the lowest file name and line.
        row_number() over (
            partition by event_id
            order by source_file, line_number
        ) as delivery_rank
    from event_lines
),

final as (
    select
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
        loaded_at,
        first_loaded_at,
        last_loaded_at,
        source_file,
        line_number,
        delivery_count
    from deliveries
    where delivery_rank = 1
)

select * from final
