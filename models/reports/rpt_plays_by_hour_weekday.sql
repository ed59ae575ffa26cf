-- When do people listen? Plays in each hour of each ISO weekday (UTC), one
-- row for every one of the 7 x 24 cells, so a quiet hour shows as zero.
with

songplays as (
    select
        start_time,
        user_id,
        level
    from {{ ref('songplays') }}
),

time as (
    select
        start_time,
        hour,
        weekday
    from {{ ref('time') }}
),

weekdays as (
    select
        weekday,
        weekday_name
    from (
        values
        (1, 'Monday'),
        (2, 'Tuesday'),
        (3, 'Wednesday'),
        (4, 'Thursday'),
        (5, 'Friday'),
        (6, 'Saturday'),
        (7, 'Sunday')
    ) as iso_weekdays (weekday, weekday_name)
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
        weekdays.weekday_name,
        hours.hour
    from weekdays
    cross join hours
),

cell_plays as (
    select
        time.weekday,
        time.hour,
        count(*) as play_count,
        count(*) filter (where songplays.level = 'free') as free_play_count,
        count(*) filter (where songplays.level = 'paid') as paid_play_count,
        count(distinct songplays.user_id) as listener_count
    from songplays
    inner join time
        on songplays.start_time = time.start_time
    group by time.weekday, time.hour
),

final as (
    select
        cells.weekday,
        cells.hour,
        cells.weekday_name,
        cast(coalesce(cell_plays.play_count, 0) as integer) as play_count,
        cast(coalesce(cell_plays.free_play_count, 0) as integer)
            as free_play_count,
        cast(coalesce(cell_plays.paid_play_count, 0) as integer)
            as paid_play_count,
        cast(coalesce(cell_plays.listener_count, 0) as integer)
            as listener_count,
        cells.weekday >= 6 as is_weekend
    from cells
    left join cell_plays
        on
            cells.weekday = cell_plays.weekday
            and cells.hour = cell_plays.hour
)

select * from final
