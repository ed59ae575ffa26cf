-- Which artists are played most? Every artist with at least one matched
-- play, ranked by plays. Plays that match no catalogue song have no artist;
-- they stay in the denominator of play_share.
with

-- Daily rollups, so a build re-reads no play: plays per song and day, and
-- per artist and day the listeners who played the artist first that day.
song_days as (
    select
        song_id,
        artist_id,
        play_count
    from {{ ref('int_plays_by_song_day') }}
),

new_listeners as (
    select
        song_or_artist_id as artist_id,
        new_listener_count
    from {{ ref('int_new_listeners_by_day') }}
    where kind = 'artist'
),

artists as (
    select
        artist_id,
        name,
        location
    from {{ ref('artists') }}
),

all_plays as (
    select sum(play_count) as play_count
    from song_days
),

listeners as (
    select
        artist_id,
        sum(new_listener_count) as listener_count
    from new_listeners
    group by artist_id
),

artist_plays as (
    select
        song_days.artist_id,
        sum(song_days.play_count) as play_count,
        count(distinct song_days.song_id) as song_count
    from song_days
    where song_days.artist_id is not null
    group by song_days.artist_id
),

final as (
    select
        artist_plays.artist_id,
        artists.name as artist_name,
        artists.location as artist_location,
        cast(artist_plays.play_count as integer) as play_count,
        cast(coalesce(listeners.listener_count, 0) as integer)
            as listener_count,
        cast(artist_plays.song_count as integer) as song_count,
        cast(
            rank() over (order by artist_plays.play_count desc) as integer
        ) as play_rank,
        round(
            cast(artist_plays.play_count as numeric) / all_plays.play_count, 4
        ) as play_share
    from artist_plays
    cross join all_plays
    inner join artists
        on artist_plays.artist_id = artists.artist_id
    left join listeners
        on artist_plays.artist_id = listeners.artist_id
)

select * from final
