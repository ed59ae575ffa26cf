{{
    config(
        materialized='incremental',
        unique_key='songplay_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['first_loaded_at']},
            {'columns': ['user_id', 'session_id']},
            {'columns': ['start_time']},
        ],
        pre_hook=[
            "{{ wait_for_loads() }}",
            "{{ record_watermark('first_loaded_at') }}",
            "{{ rebuild_all_if_rows_vanish(
                'first_loaded_at',
                ref('int_events_deduplicated'),
                'event_id',
                'songplay_id',
                'is_song_play and has_valid_ts',
            ) }}",
            "{{ set_watermark('song_loaded_at') }}",
        ],
        post_hook=["{{ refresh_statistics() }}"],
    )
}}

-- Incremental: the plays of the events landed since the last build, and the
-- plays that a changed song file may match differently. Rows never vanish
-- in an incremental build: when a play could (a file was replaced, or an
-- event was delivered again as something else than a play), a pre-hook
-- empties the table and every play is built again.

-- The CTEs inside the is_incremental() blocks sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

{#- The valid plays among the deduplicated events. -#}
{%- set valid_plays -%}
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
        first_loaded_at,
        last_loaded_at
    from {{ ref('int_events_deduplicated') }}
    where is_song_play and has_valid_ts
{%- endset %}

with

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

-- The plays to build again, each set found by an index or a join, not a
-- per-row test: events with a line landed since the newest event landing
-- already built (new events, redeliveries), plays that a song row landed
-- since the newest song row a built play matched may match (late song
-- files), and, when a song file was replaced, plays whose matched song row
-- changed or vanished. Three reads of int_events_deduplicated, each by
-- key, not one shared CTE: PostgreSQL would materialize a shared CTE, i.e.
-- read every event.
replaced_song_plays as (
    select built_plays.songplay_id as event_id
    from {{ this }} as built_plays
    left join songs
        on built_plays.song_id = songs.song_id
    where
        built_plays.song_id is not null
        and (
            songs.song_id is null
            or songs.loaded_at != built_plays.song_loaded_at
        )
        -- Only a replaced song file changes or removes a song row: without
        -- one, the scan of every built play is skipped.
        and {{ files_replaced_since(
            incremental_watermark('song_loaded_at'), 'songs'
        ) }}
),

plays as (
    select events.*
    from ({{ valid_plays }}) as events
    where events.last_loaded_at > {{ incremental_watermark('first_loaded_at') }}

    union

    select events.*
    from ({{ valid_plays }}) as events
    inner join songs as recent_songs
        on {{ song_match('events', 'recent_songs') }}
    where
        recent_songs.loaded_at > {{ incremental_watermark('song_loaded_at') }}

    union

    select events.*
    from ({{ valid_plays }}) as events
    inner join replaced_song_plays
        on events.event_id = replaced_song_plays.event_id
),

{% else %}

plays as (
    select * from ({{ valid_plays }}) as events
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
        songs.loaded_at as song_loaded_at,
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
        plays.first_loaded_at,
        song_matches.song_loaded_at
    from plays
    left join song_matches
        on
            plays.event_id = song_matches.event_id
            and song_matches.match_rank = 1
)

select * from final
