-- How long do people listen, and how many songs per sitting? One row per
-- listening session (a user's session_id) with at least one play.
with

songplays as (
    select
        songplay_id,
        user_id,
        session_id,
        level,
        start_time
    from {{ ref('songplays') }}
    -- A session is a user's session_id: plays without either have none.
    where user_id is not null and session_id is not null
),

-- The level the session started at (a user may upgrade mid-session).
ordered as (
    select
        *,
        row_number() over (
            partition by user_id, session_id
            order by start_time, songplay_id
        ) as play_number
    from songplays
),

session_plays as (
    select
        user_id,
        session_id,
        count(*) as play_count,
        -- From the first play's start to the last play's start.
        round(
            cast(
                extract(epoch from max(start_time) - min(start_time))
                as numeric
            ) / 60,
            2
        ) as session_minutes,
        min(start_time) as first_play_at,
        max(start_time) as last_play_at
    from songplays
    group by user_id, session_id
),

final as (
    select
        session_plays.user_id,
        session_plays.session_id,
        ordered.level,
        cast(session_plays.play_count as integer) as play_count,
        session_plays.session_minutes,
        session_plays.first_play_at,
        session_plays.last_play_at
    from session_plays
    inner join ordered
        on
            session_plays.user_id = ordered.user_id
            and session_plays.session_id = ordered.session_id
            and ordered.play_number = 1
)

select * from final
