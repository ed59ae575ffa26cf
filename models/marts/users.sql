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

-- The user's latest event by time decides name, gender and level; ties go
-- to the later session and item, then the lowest event_id.
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
        ) as recency_rank
    from events
),

final as (
    select
        user_id,
        first_name,
        last_name,
        gender,
        level
    from ranked
    where recency_rank = 1
)

select * from final
