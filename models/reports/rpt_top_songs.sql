-- Which songs are played most? Every catalogue song with at least one
-- play, ranked by plays. Plays that match no catalogue song have no song to
-- count; they stay in the denominator of play_share.
with

-- Daily rollups, so a build re-reads no play: plays per song and day, and
-- per song and day the listeners who played it first that day.
song_days as (
    select
        song_id,
        play_count
    from {{ ref('int_plays_by_song_day') }}
),

new_listeners as (
    select
        song_or_artist_id as song_id,
        new_listener_count
    from {{ ref('int_new_listeners_by_day') }}
    where kind = 'song'
),

songs as (
    select
        song_id,
        artist_id,
        title
    from {{ ref('songs') }}
),

artists as (
    select
        artist_id,
        name
    from {{ ref('artists') }}
),

all_plays as (
    select sum(play_count) as play_count
    from song_days
),

listeners as (
    select
        song_id,
        sum(new_listener_count) as listener_count
    from new_listeners
    group by song_id
),

song_plays as (
    select
        song_days.song_id,
        sum(song_days.play_count) as play_count,
        coalesce(max(listeners.listener_count), 0) as listener_count
    from song_days
    left join listeners
        on song_days.song_id = listeners.song_id
    where song_days.song_id is not null
    group by song_days.song_id
),

final as (
    select
        song_plays.song_id,
        songs.artist_id,
        songs.title,
        artists.name as artist_name,
        cast(song_plays.play_count as integer) as play_count,
        cast(song_plays.listener_count as integer) as listener_count,
        cast(
            rank() over (order by song_plays.play_count desc) as integer
        ) as play_rank,
        round(
            cast(song_plays.play_count as numeric) / all_plays.play_count, 4
        ) as play_share
    from song_plays
    cross join all_plays
    inner join songs
        on song_plays.song_id = songs.song_id
    left join artists
        on songs.artist_id = artists.artist_id
)

select * from final
