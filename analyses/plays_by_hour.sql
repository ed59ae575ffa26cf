-- When do people listen? Plays per hour of the day (UTC), free and paid.
with

songplays as (
    select
        start_time,
        level
    from {{ ref('songplays') }}
),

time as (
    select
        start_time,
        hour
    from {{ ref('time') }}
),

final as (
    select
        time.hour,
        count(*) as play_count,
        count(*) filter (where songplays.level = 'free') as free_play_count,
        count(*) filter (where songplays.level = 'paid') as paid_play_count
    from songplays
    inner join time
        on songplays.start_time = time.start_time
    group by time.hour
    order by time.hour
)

select * from final
