{{
    config(
        materialized='incremental',
        unique_key='songplay_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        post_hook=[
            "{{ delete_vanished_rows(
                this,
                'songplay_id',
                ref('stg_sparkify__events'),
                'event_id',
                'upstream_rows.is_song_play and upstream_rows.has_valid_ts',
            ) }}",
        ],
    )
}}

{%- set lookback_hours = var('songplays_lookback_hours') | int %}

-- The CTEs inside the is_incremental() blocks sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

with

events as (
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
        event_at,
        loaded_at,
        first_loaded_at
    from {{ ref('stg_sparkify__events') }}
    where is_song_play and has_valid_ts
),

songs as (
    select
        song_id,
        artist_id,
        title,
        artist_name,
        title_match_key,
        artist_match_key,
        duration,
        loaded_at
    from {{ ref('stg_sparkify__songs') }}
),

{% if is_incremental() %}

-- The newest landing already built, less a lookback for a load that was
-- still committing during the last run. Null when the table is empty.
watermark as (
    select
        {{ subtract_hours('max(first_loaded_at)', lookback_hours) }}
            as rebuild_since
    from {{ this }}
),

-- Song rows landed since then may match plays built before them.
recent_songs as (
    select songs.*
    from songs
    cross join watermark
    where
        watermark.rebuild_since is null
        or songs.loaded_at > watermark.rebuild_since
),

-- Plays whose matched song row changed or vanished are matched again.
rematched_plays as (
    select built_plays.songplay_id
    from {{ this }} as built_plays
    cross join watermark
    left join songs
        on built_plays.song_id = songs.song_id
    where
        built_plays.song_id is not null
        and (
            songs.song_id is null
            or songs.loaded_at > watermark.rebuild_since
        )
),

-- Events whose kept copy was landed since then: new events, and events
-- redelivered or replaced by the loader.
plays as (
    select events.*
    from events
    cross join watermark
    where
        watermark.rebuild_since is null
        or events.loaded_at > watermark.rebuild_since
        or events.event_id in (
            select rematched_plays.songplay_id from rematched_plays
        )
        or exists (
            select 1
            from recent_songs
            where {{ song_match('events', 'recent_songs') }}
        )
),

{% else %}

plays as (
    select * from events
),

{% endif %}

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
        plays.user_agent,
        plays.first_loaded_at
    from plays
    left join song_matches
        on
            plays.event_id = song_matches.event_id
            and song_matches.match_rank = 1
)

select * from final
