{%- set payload_fields = [
    'song_id', 'artist_id', 'title', 'artist_name', 'artist_location',
    'duration', 'year', 'artist_latitude', 'artist_longitude', 'num_songs',
] %}
{#- The ids as text; id_or_null nulls an over-long one. -#}
{%- set song_id_text =
    "nullif(trim(" ~ json_field('payload_json', 'song_id') ~ "), '')" %}
{%- set artist_id_text =
    "nullif(trim(" ~ json_field('payload_json', 'artist_id') ~ "), '')" %}

with

source as (
    select
        source_file,
        line_number,
        payload,
        loaded_at
    from {{ source('sparkify', 'songs') }}
),

-- The payload parsed once, for every field below (on PostgreSQL it was
-- parsed when it landed, as jsonb).
parsed as (
    select
        source_file,
        line_number,
        loaded_at,
        {{ parse_json_object('payload', payload_fields) }} as payload_json
    from source
),

-- Every field is read as text first: a damaged feed can put any JSON type
-- in any field, and no value may fail the build.
fields as (
    select
        source_file,
        line_number,
        loaded_at,
        {{ id_or_null(song_id_text) }} as song_id,
        {{ id_or_null(artist_id_text) }} as artist_id,
        nullif(trim({{ json_field('payload_json', 'title') }}), '') as title,
        nullif(trim({{ json_field('payload_json', 'artist_name') }}), '')
            as artist_name,
        nullif(trim({{ json_field('payload_json', 'artist_location') }}), '')
            as artist_location,
        trim({{ json_field('payload_json', 'duration') }}) as duration_text,
        trim({{ json_field('payload_json', 'year') }}) as year_text,
        trim({{ json_field('payload_json', 'artist_latitude') }})
            as latitude_text,
        trim({{ json_field('payload_json', 'artist_longitude') }})
            as longitude_text,
        trim({{ json_field('payload_json', 'num_songs') }}) as num_songs_text
    from parsed
    -- A song file without a usable song_id cannot be keyed; the source tests
    -- json_field_present and json_field_fits count these files.
    where {{ id_or_null(song_id_text) }} is not null
),

numbers as (
    select
        *,
        {{ safe_to_numeric('duration_text') }} as duration_number,
        {{ safe_to_numeric('year_text') }} as year_number,
        {{ safe_to_numeric('latitude_text') }} as latitude_number,
        {{ safe_to_numeric('longitude_text') }} as longitude_number,
        {{ safe_to_numeric('num_songs_text') }} as num_songs_number,
        {{ text_match_key('title') }} as title_match_key,
        {{ text_match_key('artist_name') }} as artist_match_key
    from fields
    -- Parse each field once per row, however often its result is used.
    {{ optimization_fence() }}
),

typed as (
    select
        *,
        -- The marts store seconds and degrees to 5 decimals, as the feed
        -- writes them; the bounds keep a hostile value inside those types.
        case
            when duration_number > 0 and duration_number < 100000
                then round(duration_number, 5)
        end as duration,
        -- The feed writes 0 for an unknown year.
        nullif({{ to_integer_or_null('year_number') }}, 0) as year,
        case
            when latitude_number between -90 and 90
                then round(latitude_number, 5)
        end as artist_latitude,
        case
            when longitude_number between -180 and 180
                then round(longitude_number, 5)
        end as artist_longitude,
        {{ to_integer_or_null('num_songs_number') }} as num_songs
    from numbers
),

flagged as (
    select
        *,
        duration_text is null or duration is not null as has_valid_duration,
        (
            year_text is null or year_number = 0 or year is not null
        ) as has_valid_year,
        (
            (latitude_text is null or artist_latitude is not null)
            and (longitude_text is null or artist_longitude is not null)
        ) as has_valid_coordinates,
        -- How many of the song's attributes are known.
        (case when title is not null then 1 else 0 end)
        + (case when artist_id is not null then 1 else 0 end)
        + (case when artist_name is not null then 1 else 0 end)
        + (case when artist_location is not null then 1 else 0 end)
        + (case when duration is not null then 1 else 0 end)
        + (case when year is not null then 1 else 0 end)
        + (case when artist_latitude is not null then 1 else 0 end)
        + (case when artist_longitude is not null then 1 else 0 end)
            as completeness
    from typed
),

deduplicated as (
    select
        *,
        cast(count(*) over (partition by song_id) as integer)
            as delivery_count,
        -- The same song_id in several files: keep the most complete row,
        -- then the lowest file name and line.
        row_number() over (
            partition by song_id
            order by completeness desc, source_file asc, line_number asc
        ) as delivery_rank
    from flagged
),

final as (
    select
        song_id,
        artist_id,
        title,
        artist_name,
        artist_location,
        title_match_key,
        artist_match_key,
        duration,
        artist_latitude,
        artist_longitude,
        year,
        num_songs,
        has_valid_duration,
        has_valid_year,
        has_valid_coordinates,
        loaded_at,
        source_file,
        line_number,
        delivery_count
    from deduplicated
    where delivery_rank = 1
)

select * from final
