{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'start_time',
        },
    )
}}

-- One row per distinct play start: its calendar parts. Incremental by day:
-- a build rewrites the start times of the days songplays has rewritten
-- for the same loads.

with

songplays as (
    select start_time
    from {{ ref('songplays') }}
    where {{ touched('start_time') }}
),

start_times as (
    select distinct start_time
    from songplays
),

parts as (
    select
        start_time,
        cast(extract(hour from start_time) as integer) as hour,
        cast(extract(day from start_time) as integer) as day,
        {{ iso_week('start_time') }} as week,
        cast(extract(month from start_time) as integer) as month,
        cast(extract(year from start_time) as integer) as year,
        {{ iso_weekday('start_time') }} as weekday,
        {{ date_key('start_time') }} as date_key
    from start_times
),

final as (
    select
        start_time,
        hour,
        day,
        week,
        month,
        year,
        weekday,
        {{ iso_weekday_name('weekday') }} as weekday_name,
        weekday >= 6 as is_weekend,
        date_key
    from parts
)

select * from final
