-- Free or paid? For each day of the data's range: the users at each level
-- at the end of the day, the day's listeners at each level, and its plays
-- at each level.
with

dates as (
    select date_day
    from {{ ref('dates') }}
),

-- The daily rollup of songplays, not every play.
listener_days as (
    select
        date_day,
        user_id,
        play_count,
        free_play_count,
        paid_play_count,
        last_level
    from {{ ref('int_plays_by_listener_day') }}
),

users_history as (
    select
        user_id,
        level,
        valid_from,
        valid_to
    from {{ ref('users_history') }}
),

-- A user counts from their first event on, at the level of the period
-- that holds the end of the day.
daily_users as (
    select
        dates.date_day,
        cast(count(*) as integer) as user_count,
        cast(count(*) filter (where users_history.level = 'free') as integer)
            as free_user_count,
        cast(count(*) filter (where users_history.level = 'paid') as integer)
            as paid_user_count
    from dates
    inner join users_history
        on
            cast(users_history.valid_from as date) <= dates.date_day
            and (
                users_history.valid_to is null
                or cast(users_history.valid_to as date) > dates.date_day
            )
    group by dates.date_day
),

-- A listener who changes level during a day counts at the level of their
-- last play that day.
daily_listeners as (
    select
        date_day,
        cast(count(*) as integer) as listener_count,
        cast(count(*) filter (where last_level = 'free') as integer)
            as free_listener_count,
        cast(count(*) filter (where last_level = 'paid') as integer)
            as paid_listener_count
    from listener_days
    where user_id is not null
    group by date_day
),

daily_plays as (
    select
        date_day,
        cast(sum(play_count) as integer) as play_count,
        cast(sum(free_play_count) as integer) as free_play_count,
        cast(sum(paid_play_count) as integer) as paid_play_count
    from listener_days
    group by date_day
),

joined as (
    select
        dates.date_day,
        coalesce(daily_users.user_count, 0) as user_count,
        coalesce(daily_users.free_user_count, 0) as free_user_count,
        coalesce(daily_users.paid_user_count, 0) as paid_user_count,
        coalesce(daily_listeners.listener_count, 0) as listener_count,
        coalesce(daily_listeners.free_listener_count, 0)
            as free_listener_count,
        coalesce(daily_listeners.paid_listener_count, 0)
            as paid_listener_count,
        coalesce(daily_plays.play_count, 0) as play_count,
        coalesce(daily_plays.free_play_count, 0) as free_play_count,
        coalesce(daily_plays.paid_play_count, 0) as paid_play_count
    from dates
    left join daily_users
        on dates.date_day = daily_users.date_day
    left join daily_listeners
        on dates.date_day = daily_listeners.date_day
    left join daily_plays
        on dates.date_day = daily_plays.date_day
),

final as (
    select
        *,
        round(cast(paid_user_count as numeric) / nullif(user_count, 0), 4)
            as paid_user_share,
        round(
            cast(paid_listener_count as numeric) / nullif(listener_count, 0),
            4
        ) as paid_listener_share,
        round(cast(paid_play_count as numeric) / nullif(play_count, 0), 4)
            as paid_play_share
    from joined
)

select * from final
