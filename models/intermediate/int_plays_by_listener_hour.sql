{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'date_day',
        },
        indexes=[
            {'columns': ['listener_hour_id'], 'unique': true},
            {'columns': ['date_day']},
        ],
    )
}}

-- A daily rollup of songplays that the report models aggregate instead of
-- reading every play: one row per UTC day, hour, listener, level, user
-- agent and location, with its plays. Incremental by day: a build rewrites
-- the days songplays has rewritten for the same loads.

with

songplays as (
    select
        user_id,
        level,
        user_agent,
        location,
        start_time
    from {{ ref('songplays') }}
    where {{ touched('start_time') }}
),

hourly as (
    select
        cast(start_time as date) as date_day,
        cast(extract(hour from start_time) as integer) as hour,
        user_id,
        level,
        user_agent,
        location,
        cast(count(*) as integer) as play_count
    from songplays
    group by
        cast(start_time as date),
        cast(extract(hour from start_time) as integer),
        user_id,
        level,
        user_agent,
        location
),

-- A key of fixed size: a user agent or location can be long enough that an
-- index on the columns themselves could not hold it.
final as (
    select
        {{ surrogate_key([
            'date_day', 'hour', 'user_id', 'level', 'user_agent', 'location',
        ]) }} as listener_hour_id,
        *
    from hourly
)

select * from final
