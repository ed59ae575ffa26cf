{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'users'},
        indexes=[
            {'columns': ['user_id']},
        ],
    )
}}

-- Slowly changing dimension (type 2) of the user's level, derived from the
-- events themselves: a dbt snapshot would only see the changes between two
-- runs, and could not recover the history already in the feed.
--
-- Incremental by user: a build replaces all of an affected user's periods.
-- When a user's new events all come after the last event already built,
-- the history only grows at its end: the current period stands for
-- everything before, and only the new events are read. Otherwise (a late
-- event, a redelivered day) the user's whole timeline is read again.

-- The CTEs inside the is_incremental_rewrite() blocks sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

{#- Only events that can be placed in time and say a level. -#}
{%- set timed_levels -%}
    select
        event_id,
        user_id,
        session_id,
        item_in_session,
        level,
        event_at
    from {{ ref('int_events_deduplicated') }}
    where user_id is not null and level is not null and event_at is not null
{%- endset %}

with

{% if is_incremental_rewrite() %}

-- int_events_deduplicated is read by key each time, not through one shared
-- CTE: PostgreSQL would materialize a shared CTE, i.e. read every event.
new_events as (
    select events.*
    from ({{ timed_levels }}) as events
    where {{ touched('events.event_id', 'events') }}
),

current_periods as (
    select built.*
    from {{ this }} as built
    where
        built.is_current
        and built.user_id in (select new_events.user_id from new_events)
),

-- Users read again in full: new users, and users with a new event that is
-- not after the last one built. (One row per user before the join: the
-- planner cannot know how many events are new, and may loop over them.)
first_new_events as (
    select
        new_events.user_id,
        min(new_events.event_at) as first_event_at
    from new_events
    group by new_events.user_id
),

reread_users as (
    select first_new_events.user_id
    from first_new_events
    left join current_periods
        on first_new_events.user_id = current_periods.user_id
    where
        current_periods.user_id is null
        or first_new_events.first_event_at <= current_periods.last_event_at
),

timeline as (
    select
        events.*,
        events.event_at as last_event_at
    from ({{ timed_levels }}) as events
    where events.user_id in (select reread_users.user_id from reread_users)

    union all

    -- The current period, as its first event: it sorts before every new
    -- event, and carries what its other events contribute.
    select
        current_periods.first_event_id as event_id,
        current_periods.user_id,
        null as session_id,
        null as item_in_session,
        current_periods.level,
        current_periods.valid_from as event_at,
        current_periods.last_event_at
    from current_periods
    where
        current_periods.user_id not in (
            select reread_users.user_id from reread_users
        )

    union all

    select
        new_events.*,
        new_events.event_at as last_event_at
    from new_events
    where
        new_events.user_id not in (
            select reread_users.user_id from reread_users
        )
),

-- The closed periods of the users whose history only grows: kept as built
-- (the build replaces all of a user's rows).
kept_periods as (
    select
        built.user_level_period_id,
        built.user_id,
        built.level,
        built.valid_from,
        built.valid_to,
        built.is_current,
        built.first_event_id,
        built.last_event_at
    from {{ this }} as built
    where
        not built.is_current
        and built.user_id in (
            select current_periods.user_id from current_periods
        )
        and built.user_id not in (select reread_users.user_id from reread_users)
),

{% else %}

timeline as (
    select
        events.*,
        events.event_at as last_event_at
    from ({{ timed_levels }}) as events
),

{% endif %}

-- Events in the order users.level reads them (its order, reversed): by
-- time, then session, then item, and the highest event_id first on ties.
ordered as (
    select
        *,
        lag(level) over user_timeline as previous_level,
        row_number() over user_timeline as timeline_position
    from timeline
    window user_timeline as (
        partition by user_id
        order by
            event_at asc,
            session_id asc nulls first,
            item_in_session asc nulls first,
            event_id desc
    )
),

-- A period starts at the user's first event and wherever the level changes;
-- each event belongs to the last period started at or before it.
numbered as (
    select
        *,
        sum(
            case
                when previous_level is null or previous_level != level then 1
                else 0
            end
        ) over (
            partition by user_id
            order by timeline_position
            rows between unbounded preceding and current row
        ) as period_number
    from ordered
),

period_starts as (
    select
        user_id,
        period_number,
        event_id as first_event_id,
        level,
        event_at as valid_from
    from numbered
    where previous_level is null or previous_level != level
),

period_events as (
    select
        user_id,
        period_number,
        max(last_event_at) as last_event_at
    from numbered
    group by user_id, period_number
),

periods as (
    select
        period_starts.*,
        period_events.last_event_at,
        lead(period_starts.valid_from) over (
            partition by period_starts.user_id
            order by period_starts.period_number asc
        ) as valid_to
    from period_starts
    inner join period_events
        on
            period_starts.user_id = period_events.user_id
            and period_starts.period_number = period_events.period_number
),

final as (
    select
        {{ surrogate_key(['user_id', 'first_event_id']) }}
            as user_level_period_id,
        user_id,
        level,
        valid_from,
        valid_to,
        valid_to is null as is_current,
        first_event_id,
        last_event_at
    from periods

    {% if is_incremental_rewrite() %}

    union all

    select
        user_level_period_id,
        user_id,
        level,
        valid_from,
        valid_to,
        is_current,
        first_event_id,
        last_event_at
    from kept_periods

    {% endif %}
)

select * from final
