with

songs as (
    select
        song_id,
        title,
        artist_id,
        year,
        duration
    from {{ ref('stg_sparkify__songs') }}
),

final as (
    select
        song_id,
        title,
        artist_id,
        year,
        duration
    from songs
)

select * from final
