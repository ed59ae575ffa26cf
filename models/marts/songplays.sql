{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'start_time',
        },
        indexes=[
            {'columns': ['user_id', 'session_id']},
            {'columns': ['start_time']},
        ],
    )
}}

-- Incremental by day: a build rewrites the days of the new loads' events,
-- and the days of the plays that their song files may match.

with

songs as (
    select
        song_id,
        artist_id,
        title,
        artist_name,
        title_match_key,
        artist_match_key,
        duration
    from {{ ref('stg_sparkify__songs') }}
),

-- The valid plays among the deduplicated events.
plays as (
    select
        event_id,
        user_id,
        session_id,
        level,
        location,
        user_agent,
        song_title_as_logged,
        artist_name_as_logged,
        song_match_key,
        artist_match_key,
        song_length,
        event_at
    from {{ ref('int_events_deduplicated') }}
    where
        is_song_play
        and has_valid_ts
        and {{ touched('event_at') }}
),

-- At most one song per play. When the catalogue holds several songs that
-- match, an exact match wins, then the closest duration, then the lowest
-- song_id.
song_matches as (
    select
        plays.event_id,
        songs.song_id,
        songs.artist_id,
        case
            when {{ song_match_is_exact('plays', 'songs') }} then 'exact'
            else 'normalized'
        end as song_match_rule,
        row_number() over (
            partition by plays.event_id
            order by
                {{ song_match_is_exact('plays', 'songs') }} desc,
                abs(plays.song_length - songs.duration) asc,
                songs.song_id asc
        ) as match_rank
    from plays
    inner join songs
        on {{ song_match('plays', 'songs') }}
),

final as (
    select
        plays.event_id as songplay_id,
        plays.event_at as start_time,
        plays.user_id,
        plays.level,
        song_matches.song_id,
        song_matches.artist_id,
        song_matches.song_match_rule,
        plays.session_id,
        plays.location,
        plays.user_agent
    from plays
    left join song_matches
        on
            plays.event_id = song_matches.event_id
            and song_matches.match_rank = 1
)

select * from final
