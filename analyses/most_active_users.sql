-- The ten users with the most plays, with their current level and how many
-- sessions they played in.
with

songplays as (
    select
        user_id,
        session_id
    from {{ ref('songplays') }}
    where user_id is not null
),

users as (
    select
        user_id,
        first_name,
        last_name,
        level
    from {{ ref('users') }}
),

user_plays as (
    select
        user_id,
        count(*) as play_count,
        count(distinct session_id) as session_count
    from songplays
    group by user_id
),

final as (
    select
        users.user_id,
        users.first_name,
        users.last_name,
        users.level,
        user_plays.play_count,
        user_plays.session_count
    from user_plays
    inner join users
        on user_plays.user_id = users.user_id
    order by user_plays.play_count desc, users.user_id asc
    limit 10
)

select * from final
