-- The ten most played catalogue songs, with their artist. Plays that match
-- no catalogue song (song_id null) are left out.
with

songplays as (
    select song_id
    from {{ ref('songplays') }}
    where song_id is not null
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

play_counts as (
    select
        song_id,
        count(*) as play_count
    from songplays
    group by song_id
),

final as (
    select
        play_counts.song_id,
        songs.title,
        artists.name as artist_name,
        play_counts.play_count
    from play_counts
    inner join songs
        on play_counts.song_id = songs.song_id
    left join artists
        on songs.artist_id = artists.artist_id
    order by play_counts.play_count desc, play_counts.song_id asc
    limit 10
)

select * from final
