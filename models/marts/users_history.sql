-- Slowly changing dimension (type 2) of the user's level, derived from the
-- events themselves: a dbt snapshot would only see the changes between two
-- runs, and could not recover the history already in the feed.

with

events as (
    select
        event_id,
        user_id,
        session_id,
        item_in_session,
        level,
        event_at
    from {{ ref('stg_sparkify__events') }}
    -- Only events that can be placed in time and say a level.
    where user_id is not null and level is not null and event_at is not null
),

-- Events in the order users.level reads them (its order, reversed): by
-- time, then session, then item, and the highest event_id first on ties.
ordered as (
    select
        *,
        lag(level) over user_timeline as previous_level,
        row_number() over user_timeline as timeline_position
    from events
    window user_timeline as (
        partition by user_id
        order by
            event_at asc,
            session_id asc nulls first,
            item_in_session asc nulls first,
            event_id desc
    )
),

-- A period starts at the user's first event and wherever the level changes.
period_starts as (
    select
        event_id as first_event_id,
        user_id,
        level,
        event_at as valid_from,
        timeline_position
    from ordered
    where previous_level is null or previous_level != level
),

periods as (
    select
        *,
        lead(valid_from) over (
            partition by user_id
            order by timeline_position asc
        ) as valid_to
    from period_starts
),

final as (
    select
        {{ surrogate_key(['user_id', 'first_event_id']) }}
            as user_level_period_id,
        user_id,
        level,
        valid_from,
        valid_to,
        valid_to is null as is_current
    from periods
)

select * from final
