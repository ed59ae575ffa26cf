{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days_onward',
            'rewrite_partition': 'first_played_on',
        },
        indexes=[
            {'columns': ['first_played_on']},
        ],
    )
}}

-- Each listener's first play of each song and of each artist: the rows a
-- distinct listener count adds up, day by day (int_new_listeners_by_day),
-- so the reports never re-read every play. A pair belongs to the day of
-- its first play; a late day can move it earlier, hence event_days_onward:
-- a build rewrites every day from the earliest day its loads touch, and
-- keeps the pairs first played before that day.

with

songplays as (
    select
        cast(start_time as date) as played_on,
        song_id,
        artist_id,
        user_id
    from {{ ref('songplays') }}
    where
        song_id is not null
        and user_id is not null
        and {{ touched('start_time') }}
),

firsts as (
    select
        'song' as kind,
        song_id as song_or_artist_id,
        user_id,
        min(played_on) as first_played_on
    from songplays
    group by song_id, user_id

    union all

    select
        'artist' as kind,
        artist_id as song_or_artist_id,
        user_id,
        min(played_on) as first_played_on
    from songplays
    where artist_id is not null
    group by artist_id, user_id
),

final as (
    select
        firsts.first_played_on,
        firsts.kind,
        firsts.song_or_artist_id,
        firsts.user_id
    from firsts
    {% if is_incremental_rewrite() %}
        -- Played before the rewritten days: that earlier row stays.
        where not exists (
                select 1
                from {{ this }} as earlier
                where
                    earlier.kind = firsts.kind
                    and earlier.song_or_artist_id = firsts.song_or_artist_id
                    and earlier.user_id = firsts.user_id
                    and not {{ touched('earlier.first_played_on') }}
            )
    {% endif %}
)

select * from final
