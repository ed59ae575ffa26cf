with

songs as (
    select
        artist_id,
        artist_name,
        artist_location,
        artist_latitude,
        artist_longitude,
        source_file,
        line_number
    from {{ ref('stg_sparkify__songs') }}
    where artist_id is not null
),

scored as (
    select
        *,
        -- How many of the artist's attributes this song file knows.
        (case when artist_name is not null then 1 else 0 end)
        + (case when artist_location is not null then 1 else 0 end)
        + (case when artist_latitude is not null then 1 else 0 end)
        + (case when artist_longitude is not null then 1 else 0 end)
            as completeness
    from songs
),

-- Every song file repeats its artist: keep the most complete description,
-- then the one from the lowest file name and line.
ranked as (
    select
        *,
        row_number() over (
            partition by artist_id
            order by completeness desc, source_file asc, line_number asc
        ) as completeness_rank
    from scored
),

final as (
    select
        artist_id,
        artist_name as name,
        artist_location as location,
        artist_latitude as latitude,
        artist_longitude as longitude
    from ranked
    where completeness_rank = 1
)

select * from final
