-- Which songs are played most? Every catalogue song with at least one
-- play, ranked by plays. Plays that match no catalogue song have no song to
-- count; they stay in the denominator of play_share.
with

songplays as (
    select
        song_id,
        user_id
    from {{ ref('songplays') }}
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

-- One row per song and listener first (a hash aggregate), so listeners
-- are counted without a sort per song.
listener_plays as (
    select
        song_id,
        user_id,
        count(*) as play_count
    from songplays
    group by song_id, user_id
),

all_plays as (
    select sum(play_count) as play_count
    from listener_plays
),

song_plays as (
    select
        song_id,
        sum(play_count) as play_count,
        count(user_id) as listener_count
    from listener_plays
    where song_id is not null
    group by song_id
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
