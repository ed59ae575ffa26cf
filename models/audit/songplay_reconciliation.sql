-- Where every song-play line of the feed went, day by day: kept as a play,
-- counted once more as a redelivered copy, or left out for an invalid ts.
-- A row whose parts do not add up means data was lost or doubled between
-- staging and the fact table; a test fails the build on it.

{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook=[
            "{{ wait_for_loads() }}",
            "{{ rebuild_all_with('int_events_deduplicated') }}",
            "{{ load_build_watermark('int_events_deduplicated') }}",
            "{{ delete_touched_days() }}",
        ],
        post_hook=["{{ refresh_statistics() }}"],
    )
}}

-- Incremental, by day: a build counts again the days (and the invalid-ts
-- row) of the song plays int_events_deduplicated built in this run; a
-- pre-hook first deletes those days' rows. (By hand rather than with a
-- unique_key: the invalid-ts row's date is null, which a key cannot match.)
-- When int_events_deduplicated was built in full, a pre-hook empties the
-- table and every day is counted again.

-- The CTEs inside the is_incremental() block sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

with

{% if is_incremental() %}

touched_days as (
    select distinct cast(event_at as date) as event_date
    from {{ ref('int_events_deduplicated') }}
    where
        is_song_play
        and {{ built_this_run('int_events_deduplicated', 'last_loaded_at') }}
),

-- Each touched day's plays by a range on event_at (its index), not by
-- casting every event's time to a date.
events as (
    select
        plays.event_id,
        plays.event_at,
        plays.has_valid_ts,
        plays.delivery_count
    from touched_days
    inner join {{ ref('int_events_deduplicated') }} as plays
        on
            touched_days.event_date <= plays.event_at
            and {{ next_day('touched_days.event_date') }} > plays.event_at
    where plays.is_song_play

    union all

    select
        plays.event_id,
        plays.event_at,
        plays.has_valid_ts,
        plays.delivery_count
    from {{ ref('int_events_deduplicated') }} as plays
    where
        plays.is_song_play
        and plays.event_at is null
        and exists (
            select 1 from touched_days
            where touched_days.event_date is null
        )
),

songplays as (
    select plays.start_time
    from touched_days
    inner join {{ ref('songplays') }} as plays
        on
            touched_days.event_date <= plays.start_time
            and {{ next_day('touched_days.event_date') }} > plays.start_time
),

{% else %}

events as (
    select
        event_id,
        event_at,
        has_valid_ts,
        delivery_count
    from {{ ref('int_events_deduplicated') }}
    where is_song_play
),

songplays as (
    select start_time
    from {{ ref('songplays') }}
),

{% endif %}

staged_by_day as (
    select
        cast(event_at as date) as event_date,
        cast(sum(delivery_count) as integer) as song_play_lines,
        cast(sum(delivery_count - 1) as integer) as redelivered_lines,
        cast(count(*) filter (where not has_valid_ts) as integer)
            as invalid_ts_events,
        cast(count(*) filter (where has_valid_ts) as integer) as valid_events
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
