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

-- Every song file repeats its artist: keep the most complete description,
-- then the one from the lowest file name and line.
ranked as (
    select
        *,
        row_number() over (
            partition by artist_id
            order by
                (case when artist_name is not null then 1 else 0 end)
                + (case when artist_location is not null then 1 else 0 end)
                + (case when artist_latitude is not null then 1 else 0 end)
                + (case when artist_longitude is not null then 1 else 0 end)
                desc,
                source_file asc,
                line_number asc
        ) as completeness_rank
    from songs
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
