-- What do people listen on? Plays by browser family and operating system
-- family, both read from the play's user agent.
with

-- The daily rollup of songplays, not every play.
hourly_plays as (
    select
        user_id,
        user_agent,
        play_count
    from {{ ref('int_plays_by_listener_hour') }}
),

-- One row per listener and user agent first: the families below are then
-- worked out for a few thousand rows, not for every play, and the
-- listeners are counted without a sort per family.
agent_plays as (
    select
        user_id,
        user_agent,
        sum(play_count) as play_count
    from hourly_plays
    group by user_id, user_agent
),

-- The first rule that matches wins, so the order matters: Chromium and
-- Edge agents also say Chrome and Safari, Chrome agents also say Safari,
-- iOS agents say "like Mac OS X", Android agents say Linux.
families as (
    select
        user_id,
        play_count,
        case
            when user_agent is null then 'Unknown'
            when user_agent like '%Edge/%' then 'Edge'
            when user_agent like '%OPR/%' then 'Opera'
            when user_agent like '%Opera%' then 'Opera'
            when user_agent like '%Chromium/%' then 'Chromium'
            when user_agent like '%Chrome/%' then 'Chrome'
            when user_agent like '%CriOS/%' then 'Chrome'
            when user_agent like '%Firefox/%' then 'Firefox'
            when user_agent like '%MSIE %' then 'Internet Explorer'
            when user_agent like '%Trident/%' then 'Internet Explorer'
            when user_agent like '%Safari/%' then 'Safari'
            else 'Other'
        end as browser_family,
        case
            when user_agent is null then 'Unknown'
            when user_agent like '%Windows%' then 'Windows'
            when user_agent like '%Android%' then 'Android'
            when user_agent like '%iPhone%' then 'iOS'
            when user_agent like '%iPad%' then 'iOS'
            when user_agent like '%iPod%' then 'iOS'
            when user_agent like '%Mac OS X%' then 'macOS'
            when user_agent like '%CrOS%' then 'Chrome OS'
            when user_agent like '%Linux%' then 'Linux'
            when user_agent like '%X11%' then 'Linux'
            else 'Other'
        end as os_family
    from agent_plays
),

all_plays as (
    select sum(play_count) as play_count
    from agent_plays
),

family_plays as (
    select
        browser_family,
        os_family,
        sum(play_count) as play_count,
        count(distinct user_id) as listener_count
    from families
    group by browser_family, os_family
),

final as (
    select
        family_plays.browser_family,
        family_plays.os_family,
        cast(family_plays.play_count as integer) as play_count,
        cast(family_plays.listener_count as integer) as listener_count,
        round(
            cast(family_plays.play_count as numeric) / all_plays.play_count, 4
        ) as play_share
    from family_plays
    cross join all_plays
)

select * from final
