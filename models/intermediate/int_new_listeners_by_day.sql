{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days_onward',
            'rewrite_partition': 'date_day',
        },
    )
}}

-- A daily rollup of int_first_plays: per day, song or artist, the listeners
-- who played it for the first time. Summed over all days, a song's or an
-- artist's distinct listeners.

with

first_plays as (
    select
        first_played_on,
        kind,
        song_or_artist_id
    from {{ ref('int_first_plays') }}
    where {{ touched('first_played_on') }}
),

final as (
    select
        first_played_on as date_day,
        kind,
        song_or_artist_id,
        cast(count(*) as integer) as new_listener_count
    from first_plays
    group by first_played_on, kind, song_or_artist_id
)

select * from final
