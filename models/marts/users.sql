-- One row per user: the profile of their latest event and the level of
-- their latest event that states one, as chosen (incrementally) by
-- int_users_latest_events. Two lookups by key per user: cheap to rebuild in
-- full on every build. (int_events_deduplicated is joined twice rather than
-- through one CTE, which PostgreSQL would materialize, reading every event.)
with

latest_events as (
    select
        user_id,
        profile_event_id,
        level_event_id
    from {{ ref('int_users_latest_events') }}
),

final as (
    select
        latest_events.user_id,
        profiles.first_name,
        profiles.last_name,
        profiles.gender,
        levels.level
    from latest_events
    inner join {{ ref('int_events_deduplicated') }} as profiles
        on latest_events.profile_event_id = profiles.event_id
    left join {{ ref('int_events_deduplicated') }} as levels
        on
            latest_events.level_event_id = levels.event_id
            and levels.level is not null
            and levels.event_at is not null
)

select * from final
