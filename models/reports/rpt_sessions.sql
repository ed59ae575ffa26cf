{{
    config(
        materialized='incremental',
        unique_key=['user_id', 'session_id'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['user_id', 'session_id'], 'unique': true},
        ],
        pre_hook=[
            "{{ wait_for_loads() }}",
            "{{ rebuild_all_with('songplays') }}",
            "{{ load_build_watermark('songplays') }}",
        ],
        post_hook=["{{ refresh_statistics() }}"],
    )
}}

-- How long do people listen, and how many songs per sitting? One row per
-- listening session (a user's session_id) with at least one play.
--
-- Incremental: a build measures again the sessions with a play songplays
-- built in this run, from all of their plays. When songplays was built in
-- full (or not built), a pre-hook empties this table and every session is
-- measured again.

-- The CTEs inside the is_incremental() block sit at the top level.
-- sqlfluff:indentation:template_blocks_indent:false

with

{% if is_incremental() %}

touched_sessions as (
    select distinct
        user_id,
        session_id
    from {{ ref('songplays') }}
    where
        {{ built_this_run('songplays', 'first_loaded_at') }}
        and user_id is not null
        and session_id is not null
),

songplays as (
    select
        plays.songplay_id,
        plays.user_id,
        plays.session_id,
        plays.level,
        plays.start_time
    from {{ ref('songplays') }} as plays
    inner join touched_sessions
        on
            plays.user_id = touched_sessions.user_id
            and plays.session_id = touched_sessions.session_id
),

{% else %}

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

{% endif %}

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
        min(first_level) as level,
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
