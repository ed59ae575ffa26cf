-- When do people listen? Plays in each hour of each ISO weekday (UTC), one
-- row for every one of the 7 x 24 cells, so a quiet hour shows as zero.
with

-- The daily rollup of songplays, not every play.
hourly_plays as (
    select
        date_day,
        hour,
        user_id,
        level,
        play_count
    from {{ ref('int_plays_by_listener_hour') }}
),

dates as (
    select
        date_day,
        weekday
    from {{ ref('dates') }}
),

weekdays as (
    select weekday
    from (values (1), (2), (3), (4), (5), (6), (7)) as iso_weekdays (weekday)
),

hours as (
    select hour
    from (
        values
        (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11),
        (12), (13), (14), (15), (16), (17), (18), (19), (20), (21), (22), (23)
    ) as day_hours (hour)
),

cells as (
    select
        weekdays.weekday,
        hours.hour
    from weekdays
    cross join hours
),

-- How many of each weekday the data's date range holds (a month has four
-- or five Mondays), to turn counts into a per-day rate.
weekday_days as (
    select
        weekday,
        count(*) as day_count
    from dates
    group by weekday
),

cell_plays as (
    select
        dates.weekday,
        hourly_plays.hour,
        sum(hourly_plays.play_count) as play_count,
        sum(hourly_plays.play_count) filter (
            where hourly_plays.level = 'free'
        ) as free_play_count,
        sum(hourly_plays.play_count) filter (
            where hourly_plays.level = 'paid'
        ) as paid_play_count,
        count(distinct hourly_plays.user_id) as listener_count
    from hourly_plays
    inner join dates
        on hourly_plays.date_day = dates.date_day
    group by dates.weekday, hourly_plays.hour
),

counted as (
    select
        cells.weekday,
        cells.hour,
        cast(coalesce(cell_plays.play_count, 0) as integer) as play_count,
        cast(coalesce(cell_plays.free_play_count, 0) as integer)
            as free_play_count,
        cast(coalesce(cell_plays.paid_play_count, 0) as integer)
            as paid_play_count,
        cast(coalesce(cell_plays.listener_count, 0) as integer)
            as listener_count,
        cast(coalesce(weekday_days.day_count, 0) as integer) as day_count
    from cells
    left join cell_plays
        on
            cells.weekday = cell_plays.weekday
            and cells.hour = cell_plays.hour
    left join weekday_days
        on cells.weekday = weekday_days.weekday
),

final as (
    select
        weekday,
        hour,
        {{ iso_weekday_name('weekday') }} as weekday_name,
        play_count,
        free_play_count,
        paid_play_count,
        listener_count,
        day_count,
        round(cast(play_count as numeric) / nullif(day_count, 0), 2)
            as plays_per_day,
        weekday >= 6 as is_weekend
    from counted
)

select * from final
