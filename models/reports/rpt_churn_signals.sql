{%- set window_days = var('churn_window_days') | int %}
{%- set min_prior_plays = var('churn_min_prior_plays') | int %}

-- Whose listening is falling? Every user who played, with their plays in
-- the last window of the data against the window before it. The windows
-- end at the newest play in the warehouse, not today: a replayed or old
-- feed gives the same answer.
with

-- The daily rollup of songplays: whole days of a window are counted from
-- it, and only the two days a window boundary cuts through from the plays.
listener_days as (
    select
        date_day,
        user_id,
        play_count,
        first_played_at,
        last_played_at
    from {{ ref('int_plays_by_listener_day') }}
    where user_id is not null
),

users as (
    select
        user_id,
        level
    from {{ ref('users') }}
),

window_ends as (
    select
        max(last_played_at) as window_end_at,
        {{ subtract_hours('max(last_played_at)', 24 * window_days) }}
            as recent_start_at,
        {{ subtract_hours('max(last_played_at)', 48 * window_days) }}
            as prior_start_at
    from listener_days
),

windows as (
    select
        *,
        cast(recent_start_at as date) as recent_start_day,
        cast(prior_start_at as date) as prior_start_day
    from window_ends
),

-- The plays of the two boundary days, each day by a range on start_time
-- (its index).
boundary_plays as (
    {% for boundary in ['recent_start_day', 'prior_start_day'] %}
        {% if not loop.first %}union all{% endif %}
        select
            plays.user_id,
            plays.start_time
        from {{ ref('songplays') }} as plays
        where
            plays.user_id is not null
            and plays.start_time >= (select {{ boundary }} from windows)
            and plays.start_time
            < (select {{ next_day(boundary) }} from windows)
    {% endfor %}
),

boundary_counts as (
    select
        boundary_plays.user_id,
        count(*) filter (
            where boundary_plays.start_time > windows.recent_start_at
        ) as recent_play_count,
        count(*) filter (
            where
            boundary_plays.start_time > windows.prior_start_at
            and boundary_plays.start_time <= windows.recent_start_at
        ) as prior_play_count
    from boundary_plays
    cross join windows
    group by boundary_plays.user_id
),

day_counts as (
    select
        listener_days.user_id,
        coalesce(sum(listener_days.play_count) filter (
            where listener_days.date_day > windows.recent_start_day
        ), 0) as recent_play_count,
        coalesce(sum(listener_days.play_count) filter (
            where
            listener_days.date_day > windows.prior_start_day
            and listener_days.date_day < windows.recent_start_day
        ), 0) as prior_play_count,
        min(listener_days.first_played_at) as first_play_at,
        max(listener_days.last_played_at) as last_play_at
    from listener_days
    cross join windows
    group by listener_days.user_id
),

user_plays as (
    select
        day_counts.user_id,
        day_counts.first_play_at,
        day_counts.last_play_at,
        day_counts.recent_play_count
        + coalesce(boundary_counts.recent_play_count, 0) as recent_play_count,
        day_counts.prior_play_count
        + coalesce(boundary_counts.prior_play_count, 0) as prior_play_count
    from day_counts
    left join boundary_counts
        on day_counts.user_id = boundary_counts.user_id
),

final as (
    select
        user_plays.user_id,
        users.level,
        cast(user_plays.prior_play_count as integer) as prior_play_count,
        cast(user_plays.recent_play_count as integer) as recent_play_count,
        cast(
            user_plays.recent_play_count - user_plays.prior_play_count
            as integer
        ) as play_count_change,
        round(
            cast(user_plays.recent_play_count as numeric)
            / nullif(user_plays.prior_play_count, 0),
            4
        ) as recent_to_prior_ratio,
        round(
            {{ seconds_between(
                'user_plays.last_play_at', 'windows.window_end_at'
            ) }} / 86400,
            1
        ) as days_since_last_play,
        (
            user_plays.prior_play_count >= {{ min_prior_plays }}
            and user_plays.recent_play_count * 2 <= user_plays.prior_play_count
        ) as is_falling,
        (
            user_plays.prior_play_count > 0
            and user_plays.recent_play_count = 0
        ) as is_silent,
        user_plays.first_play_at,
        user_plays.last_play_at,
        windows.window_end_at
    from user_plays
    cross join windows
    left join users
        on user_plays.user_id = users.user_id
)

select * from final
