-- Which artists are played most? Every artist with at least one matched
-- play, ranked by plays. Plays that match no catalogue song have no artist;
-- they stay in the denominator of play_share.
with

songplays as (
    select
        artist_id,
        song_id,
        user_id
    from {{ ref('songplays') }}
),

artists as (
    select
        artist_id,
        name,
        location
    from {{ ref('artists') }}
),

all_plays as (
    select count(*) as play_count
    from songplays
),

artist_plays as (
    select
        artist_id,
        count(*) as play_count,
        count(distinct user_id) as listener_count,
        count(distinct song_id) as song_count
    from songplays
    where artist_id is not null
    group by artist_id
),

final as (
    select
        artist_plays.artist_id,
        artists.name as artist_name,
        artists.location as artist_location,
        cast(artist_plays.play_count as integer) as play_count,
        cast(artist_plays.listener_count as integer) as listener_count,
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
)

select * from final
