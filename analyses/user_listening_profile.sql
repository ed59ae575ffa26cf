{%- set user_id = var('profile_user_id', none) %}

-- One listener's story: for each period of their level history, how much
-- they played, in how many sessions, and their most played artist. An
-- analysis, not a table: it answers for one user at a time. By default the
-- user with the most plays; pick another with
--   dbt compile --select user_listening_profile \
--       --vars '{profile_user_id: "15"}'
with

songplays as (
    select
        user_id,
        session_id,
        artist_id,
        start_time
    from {{ ref('songplays') }}
),

users_history as (
    select
        user_level_period_id,
        user_id,
        level,
        valid_from,
        valid_to
    from {{ ref('users_history') }}
),

artists as (
    select
        artist_id,
        name
    from {{ ref('artists') }}
),

chosen_user as (
    {% if user_id is none %}
        select user_id
        from songplays
        where user_id is not null
        group by user_id
        order by count(*) desc, user_id asc
        limit 1
    {% else %}
        select cast('{{ user_id }}' as {{ text_type() }}) as user_id
    {% endif %}
),

periods as (
    select users_history.*
    from users_history
    inner join chosen_user
        on users_history.user_id = chosen_user.user_id
),

period_plays as (
    select
        periods.user_level_period_id,
        songplays.session_id,
        songplays.artist_id
    from periods
    inner join songplays
        on
            periods.user_id = songplays.user_id
            and periods.valid_from <= songplays.start_time
            and (
                periods.valid_to is null
                or periods.valid_to > songplays.start_time
            )
),

artist_ranks as (
    select
        user_level_period_id,
        artist_id,
        row_number() over (
            partition by user_level_period_id
            order by count(*) desc, artist_id asc
        ) as artist_rank
    from period_plays
    where artist_id is not null
    group by user_level_period_id, artist_id
),

period_totals as (
    select
        user_level_period_id,
        count(*) as play_count,
        count(distinct session_id) as session_count
    from period_plays
    group by user_level_period_id
),

final as (
    select
        periods.user_id,
        periods.level,
        artists.name as top_artist_name,
        periods.valid_from,
        periods.valid_to,
        coalesce(period_totals.play_count, 0) as play_count,
        coalesce(period_totals.session_count, 0) as session_count
    from periods
    left join period_totals
        on periods.user_level_period_id = period_totals.user_level_period_id
    left join artist_ranks
        on
            periods.user_level_period_id = artist_ranks.user_level_period_id
            and artist_ranks.artist_rank = 1
    left join artists
        on artist_ranks.artist_id = artists.artist_id
    order by periods.valid_from
)

select * from final
