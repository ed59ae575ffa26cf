{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'events'},
        indexes=[
            {'columns': ['event_id'], 'unique': true},
            {'columns': ['user_id']},
            {'columns': ['event_at']},
        ],
    )
}}

-- One row per event: a line delivered twice (the same day file under
-- another name, or the same line twice) is one event, identified by
-- event_id. Incremental by event: a build recomputes the events that the
-- new loads' lines belong to, from all of their lines.

with

event_lines as (
    select *
    from {{ ref('stg_sparkify__events') }}
    where {{ touched('event_id') }}
),

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
