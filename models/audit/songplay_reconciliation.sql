-- Where every song-play line of the feed went, day by day: kept as a play,
-- counted once more as a redelivered copy, or left out for an invalid ts.
-- A row whose parts do not add up means data was lost or doubled between
-- staging and the fact table; a test fails the build on it.

{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'event_date',
        },
    )
}}

-- Incremental by day: a build counts again the days of the new loads'
-- events (and the row of events with no valid ts).

with

events as (
    select
        event_id,
        event_at,
        is_song_play,
        has_valid_ts,
        delivery_count
    from {{ ref('int_events_deduplicated') }}
    where
        (is_song_play or {{ is_play_like_page('page') }})
        and {{ touched('event_at') }}
),

songplays as (
    select start_time
    from {{ ref('songplays') }}
    where {{ touched('start_time') }}
),

staged_by_day as (
    select
        cast(event_at as date) as event_date,
        cast(
            coalesce(sum(delivery_count) filter (where is_song_play), 0)
            as integer
        ) as song_play_lines,
        cast(
            coalesce(sum(delivery_count - 1) filter (where is_song_play), 0)
            as integer
        ) as redelivered_lines,
        cast(
            count(*) filter (where is_song_play and not has_valid_ts)
            as integer
        ) as invalid_ts_events,
        cast(
            count(*) filter (where is_song_play and has_valid_ts) as integer
        ) as valid_events,
        cast(count(*) filter (where not is_song_play) as integer)
            as play_like_events
    from events
    group by cast(event_at as date)
),

built_by_day as (
    select
        cast(start_time as date) as event_date,
        cast(count(*) as integer) as songplays
    from songplays
    group by cast(start_time as date)
),

final as (
    select
        coalesce(staged_by_day.event_date, built_by_day.event_date)
            as event_date,
        coalesce(staged_by_day.song_play_lines, 0) as song_play_lines,
        coalesce(staged_by_day.redelivered_lines, 0) as redelivered_lines,
        coalesce(staged_by_day.invalid_ts_events, 0) as invalid_ts_events,
        coalesce(staged_by_day.valid_events, 0) as valid_events,
        coalesce(built_by_day.songplays, 0) as songplays,
        coalesce(staged_by_day.play_like_events, 0) as play_like_events,
        (
            coalesce(staged_by_day.valid_events, 0)
            = coalesce(built_by_day.songplays, 0)
            and coalesce(staged_by_day.song_play_lines, 0)
            = coalesce(staged_by_day.redelivered_lines, 0)
            + coalesce(staged_by_day.invalid_ts_events, 0)
            + coalesce(built_by_day.songplays, 0)
        ) as is_reconciled
    from staged_by_day
    full outer join built_by_day
        on staged_by_day.event_date = built_by_day.event_date
)

select * from final
