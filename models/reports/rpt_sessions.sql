{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'sessions'},
        indexes=[
            {'columns': ['user_id', 'session_id'], 'unique': true},
        ],
    )
}}

-- How long do people listen, and how many songs per sitting? One row per
-- listening session (a user's session_id) with at least one play.
-- Incremental by session: a build measures again, from all of their plays,
-- the sessions the new loads' events belong to.

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
    where
        user_id is not null
        and session_id is not null
        and {{ touched('user_id, session_id') }}
),

-- The level the session started at (a user may upgrade mid-session), on
-- every play of the session: one pass, no join back.
with_first_level as (
    select
        *,
        first_value(level) over (
            partition by user_id, session_id
            order by start_time, songplay_id
        ) as first_level
    from songplays
),

session_plays as (
    select
        user_id,
        session_id,
        -- From the first play's start to the last play's start. Typed as the
        -- table's column: an incremental build compares the types.
        cast(
            {{ seconds_between('min(start_time)', 'max(start_time)') }} / 60
            as numeric(10, 2)
        ) as session_minutes,
        min(first_level) as level,
        count(*) as play_count,
        min(start_time) as first_play_at,
        max(start_time) as last_play_at
    from with_first_level
    group by user_id, session_id
),

final as (
    select
        user_id,
        session_id,
        level,
        cast(play_count as integer) as play_count,
        session_minutes,
        first_play_at,
        last_play_at
    from session_plays
)

select * from final
