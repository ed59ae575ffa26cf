{{
    config(
        materialized='rewrite',
        meta={
            'incremental_policy': 'event_days',
            'rewrite_partition': 'date_day',
        },
        indexes=[
            {'columns': ['date_day', 'user_id'], 'unique': true},
        ],
    )
}}

-- A daily rollup of songplays: one row per UTC day and listener (and one
-- for the day's plays without a user), with the day's plays at each level
-- and the level of the listener's last play that day. Incremental by day,
-- like int_plays_by_listener_hour.

with

songplays as (
    select
        songplay_id,
        user_id,
        level,
        start_time
    from {{ ref('songplays') }}
    where {{ touched('start_time') }}
),

ranked as (
    select
        *,
        cast(start_time as date) as date_day,
        row_number() over (
            partition by cast(start_time as date), user_id
            order by start_time desc, songplay_id desc
        ) as recency_rank
    from songplays
),

final as (
    select
        date_day,
        user_id,
        cast(count(*) as integer) as play_count,
        cast(count(*) filter (where level = 'free') as integer)
            as free_play_count,
        cast(count(*) filter (where level = 'paid') as integer)
            as paid_play_count,
        max(case when recency_rank = 1 then level end) as last_level,
        min(start_time) as first_played_at,
        max(start_time) as last_played_at
    from ranked
    group by date_day, user_id
)

select * from final
