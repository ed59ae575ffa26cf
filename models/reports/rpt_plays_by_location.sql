-- Where do people listen? Plays by the listener's location as the feed
-- reports it ("Chicago-Naperville-Elgin, IL-IN-WI"), split into the city
-- part and the principal state, with the state's Census region.
with

-- The daily rollup of songplays, not every play.
hourly_plays as (
    select
        user_id,
        location,
        play_count
    from {{ ref('int_plays_by_listener_hour') }}
),

us_states as (
    select
        state_code,
        state_name,
        division,
        region
    from {{ ref('us_states') }}
),

-- One row per location and listener first (a hash aggregate), so listeners
-- are counted without a sort per location.
listener_plays as (
    select
        location,
        user_id,
        sum(play_count) as play_count
    from hourly_plays
    group by location, user_id
),

all_plays as (
    select sum(play_count) as play_count
    from listener_plays
),

location_plays as (
    select
        location,
        sum(play_count) as play_count,
        count(user_id) as listener_count
    from listener_plays
    group by location
),

-- The text after the last comma lists the area's states, principal first.
parsed as (
    select
        *,
        case
            when location like '%,%'
                then trim(regexp_replace(location, ',[^,]*$', ''))
            else nullif(trim(location), '')
        end as city,
        case
            when location like '%,%'
                then upper(trim(regexp_replace(location, '^.*,', '')))
        end as state_codes
    from location_plays
),

final as (
    select
        {{ surrogate_key(['parsed.location']) }} as location_id,
        parsed.location,
        parsed.city,
        nullif(split_part(parsed.state_codes, '-', 1), '') as state_code,
        us_states.state_name,
        us_states.division,
        us_states.region,
        cast(parsed.play_count as integer) as play_count,
        cast(parsed.listener_count as integer) as listener_count,
        round(
            cast(parsed.play_count as numeric) / all_plays.play_count, 4
        ) as play_share,
        coalesce(parsed.state_codes like '%-%', false) as is_multi_state
    from parsed
    cross join all_plays
    left join us_states
        on split_part(parsed.state_codes, '-', 1) = us_states.state_code
)

select * from final
