with

songplays as (
    select start_time
    from {{ ref('songplays') }}
),

start_times as (
    select distinct start_time
    from songplays
),

final as (
    select
        start_time,
        cast(extract(hour from start_time) as integer) as hour,
        cast(extract(day from start_time) as integer) as day,
        {{ iso_week('start_time') }} as week,
        cast(extract(month from start_time) as integer) as month,
        cast(extract(year from start_time) as integer) as year,
        {{ iso_weekday('start_time') }} as weekday
    from start_times
)

select * from final
