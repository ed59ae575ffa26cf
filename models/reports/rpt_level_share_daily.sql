-- Free or paid? For each day with plays, the plays and the listeners at
-- each level.
with

songplays as (
    select
        songplay_id,
        user_id,
        level,
        start_time
    from {{ ref('songplays') }}
),

dated_plays as (
    select
        *,
        cast(start_time as date) as date_day
    from songplays
),

-- A listener who changes level during a day counts at the level of their
-- last play that day.
listener_days as (
    select
        date_day,
        user_id,
        level,
        row_number() over (
            partition by date_day, user_id
            order by start_time desc, songplay_id desc
        ) as recency_rank
    from dated_plays
    where user_id is not null
),

daily_listeners as (
    select
        date_day,
        cast(count(*) as integer) as listener_count,
        cast(count(*) filter (where level = 'free') as integer)
            as free_listener_count,
        cast(count(*) filter (where level = 'paid') as integer)
            as paid_listener_count
    from listener_days
    where recency_rank = 1
    group by date_day
),

daily_plays as (
    select
        date_day,
        cast(count(*) as integer) as play_count,
        cast(count(*) filter (where level = 'free') as integer)
            as free_play_count,
        cast(count(*) filter (where level = 'paid') as integer)
            as paid_play_count
    from dated_plays
    group by date_day
),

final as (
    select
        daily_plays.date_day,
        daily_plays.play_count,
        daily_plays.free_play_count,
        daily_plays.paid_play_count,
        -- Every day here has a play, so it has a listener unless all of
        -- its plays lack a user.
        coalesce(daily_listeners.listener_count, 0) as listener_count,
        coalesce(daily_listeners.free_listener_count, 0)
            as free_listener_count,
        coalesce(daily_listeners.paid_listener_count, 0)
            as paid_listener_count,
        round(
            cast(daily_plays.paid_play_count as numeric)
            / daily_plays.play_count,
            4
        ) as paid_play_share,
        round(
            cast(daily_listeners.paid_listener_count as numeric)
            / nullif(daily_listeners.listener_count, 0),
            4
        ) as paid_listener_share
    from daily_plays
    left join daily_listeners
        on daily_plays.date_day = daily_listeners.date_day
)

select * from final
