{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'date_day',
        },
        indexes=[
            {'columns': ['date_day', 'song_id'], 'unique': true},
        ],
    )
}}

-- A daily rollup of songplays: one row per UTC day and song (and one for
-- the day's plays that match no song), with its plays. Incremental by day,
-- like int_plays_by_listener_day.

with

songplays as (
    select
        song_id,
        artist_id,
        cast(start_time as date) as date_day
    from {{ ref('songplays') }}
    where {{ touched('start_time') }}
),

final as (
    select
        date_day,
        song_id,
        cast(count(*) as integer) as play_count,
        -- a song has one artist (songplays takes both from the match)
        max(artist_id) as artist_id
    from songplays
    group by date_day, song_id
)

select * from final
