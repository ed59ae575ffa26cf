with

events as (
    select
        event_id,
        user_id,
        session_id,
        item_in_session,
        first_name,
        last_name,
        gender,
        level,
        event_at
    from {{ ref('stg_sparkify__events') }}
    where user_id is not null
),

-- Each user's events, latest first: by time, then the later session and
-- item, then the lowest event_id. users_history reads the same order.
ranked as (
    select
        *,
        row_number() over (
            partition by user_id
            order by
                event_at desc nulls last,
                session_id desc nulls last,
                item_in_session desc nulls last,
                event_id asc
        ) as recency_rank,
        -- The level is the latest one an event placed in time states, so
        -- that it always equals users_history's current period.
        row_number() over (
            partition by user_id
            order by
                (level is not null and event_at is not null) desc,
                event_at desc nulls last,
                session_id desc nulls last,
                item_in_session desc nulls last,
                event_id asc
        ) as level_recency_rank
    from events
),

profiles as (
    select
        user_id,
        first_name,
        last_name,
        gender
    from ranked
    where recency_rank = 1
),

levels as (
    select
        user_id,
        level
    from ranked
    where level_recency_rank = 1 and level is not null and event_at is not null
),

final as (
    select
        profiles.user_id,
        profiles.first_name,
        profiles.last_name,
        profiles.gender,
        levels.level
    from profiles
    left join levels
        on profiles.user_id = levels.user_id
)

select * from final
