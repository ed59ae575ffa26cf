{%- set window_days = var('churn_window_days') | int %}
{%- set min_prior_plays = var('churn_min_prior_plays') | int %}

-- Whose listening is falling? Every user who played, with their plays in
-- the last window of the data against the window before it. The windows
-- end at the newest play in the warehouse, not today: a replayed or old
-- feed gives the same answer.
with

songplays as (
    select
        user_id,
        start_time
    from {{ ref('songplays') }}
    where user_id is not null
),

users as (
    select
        user_id,
        level
    from {{ ref('users') }}
),

windows as (
    select
        max(start_time) as window_end_at,
        {{ subtract_hours('max(start_time)', 24 * window_days) }}
            as recent_start_at,
        {{ subtract_hours('max(start_time)', 48 * window_days) }}
            as prior_start_at
    from songplays
),

user_plays as (
    select
        songplays.user_id,
        count(*) filter (
            where songplays.start_time > windows.recent_start_at
        ) as recent_play_count,
        count(*) filter (
            where
            songplays.start_time > windows.prior_start_at
            and songplays.start_time <= windows.recent_start_at
        ) as prior_play_count,
        min(songplays.start_time) as first_play_at,
        max(songplays.start_time) as last_play_at
    from songplays
    cross join windows
    group by songplays.user_id
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
            cast(
                extract(
                    epoch from windows.window_end_at - user_plays.last_play_at
                ) as numeric
            ) / 86400,
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
