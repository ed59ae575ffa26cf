-- Who converts? For each day of the data's range, how many users upgraded
-- from free to paid and how many downgraded from paid to free, read from
-- the level history (users_history), with running totals.
with

dates as (
    select date_day
    from {{ ref('dates') }}
),

users_history as (
    select
        user_level_period_id,
        user_id,
        level,
        valid_from
    from {{ ref('users_history') }}
),

-- Each period after a user's first one starts with a change of level.
changes as (
    select
        user_id,
        level,
        valid_from,
        lag(level) over (
            partition by user_id
            order by valid_from, user_level_period_id
        ) as previous_level
    from users_history
),

daily_changes as (
    select
        cast(valid_from as date) as date_day,
        count(*) filter (
            where previous_level = 'free' and level = 'paid'
        ) as upgrade_count,
        count(*) filter (
            where previous_level = 'paid' and level = 'free'
        ) as downgrade_count
    from changes
    where previous_level is not null
    group by cast(valid_from as date)
),

daily as (
    select
        dates.date_day,
        cast(coalesce(daily_changes.upgrade_count, 0) as integer)
            as upgrade_count,
        cast(coalesce(daily_changes.downgrade_count, 0) as integer)
            as downgrade_count
    from dates
    left join daily_changes
        on dates.date_day = daily_changes.date_day
),

final as (
    select
        date_day,
        upgrade_count,
        downgrade_count,
        cast(upgrade_count - downgrade_count as integer) as net_upgrade_count,
        cast(
            sum(upgrade_count) over (order by date_day) as integer
        ) as cumulative_upgrade_count,
        cast(
            sum(downgrade_count) over (order by date_day) as integer
        ) as cumulative_downgrade_count
    from daily
)

select * from final
