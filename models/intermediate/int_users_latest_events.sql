{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'users'},
        indexes=[
            {'columns': ['user_id'], 'unique': true},
        ],
    )
}}

-- Per user, which event the users mart takes the profile from (the latest)
-- and which the level from (the latest placed in time that states one).
-- Incremental by user: an event already seen can only lose to a newer one,
-- so a build ranks each affected user's new events against the two events
-- chosen before, not the user's whole history. An event delivered again
-- may have changed, so its user's events all compete again.

-- The CTEs inside the is_incremental_rewrite() blocks sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

{%- set event_columns -%}
    event_id,
    user_id,
    session_id,
    item_in_session,
    level,
    event_at
{%- endset %}

with

{% if is_incremental_rewrite() %}

-- int_events_deduplicated is read by key here, not through one shared CTE:
-- PostgreSQL would materialize a shared CTE, i.e. read every event.
new_events as (
    select
        {{ event_columns }},
        delivery_count
    from {{ ref('int_events_deduplicated') }}
    where user_id is not null and {{ touched('event_id', 'events') }}
),

affected_users as (
    select
        user_id,
        profile_event_id,
        level_event_id
    from {{ this }}
    where user_id in (select new_events.user_id from new_events)
),

-- The new events, the two events chosen before for the users with new
-- events (each joined by its own key, so each is an index lookup), and all
-- events of a user with an event delivered again.
candidates as (
    select {{ event_columns }} from new_events
    {% for chosen in ['profile_event_id', 'level_event_id'] %}

    union

    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.item_in_session,
        events.level,
        events.event_at
    from affected_users
    inner join {{ ref('int_events_deduplicated') }} as events
        on affected_users.{{ chosen }} = events.event_id
    {% endfor %}

    union

    select
        events.event_id,
        events.user_id,
        events.session_id,
        events.item_in_session,
        events.level,
        events.event_at
    from {{ ref('int_events_deduplicated') }} as events
    where
        events.user_id in (
            select new_events.user_id
            from new_events
            where new_events.delivery_count > 1
        )
),

{% else %}

candidates as (
    select {{ event_columns }}
    from {{ ref('int_events_deduplicated') }}
    where user_id is not null
),

{% endif %}

-- Latest first: by time, then the later session and item, then the lowest
-- event_id; users_history reads the same order.
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
        -- The level comes from the latest event placed in time that states
        -- one, so that it always equals users_history's current period.
        row_number() over (
            partition by user_id
            order by
                (level is not null and event_at is not null) desc,
                event_at desc nulls last,
                session_id desc nulls last,
                item_in_session desc nulls last,
                event_id asc
        ) as level_recency_rank
    from candidates
),

final as (
    select
        user_id,
        max(case when recency_rank = 1 then event_id end) as profile_event_id,
        max(case when level_recency_rank = 1 then event_id end)
            as level_event_id
    from ranked
    group by user_id
)

select * from final
