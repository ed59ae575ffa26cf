-- The warehouse's floor: the star schema dbt builds (songplays, users, songs,
-- artists, time), in plain SQL, from the same raw tables, into schema floor.
-- No framework, no tests, no incremental state: what PostgreSQL itself needs to
-- do the work. benchmarks/ingest.py times it beside a full `dbt build` and
-- prints both row counts, which must be equal.
--
-- The rules are the dbt project's (models/staging/sparkify/, the intermediate
-- models, models/marts/, macros/): fields read as text and trimmed, mojibake
-- repaired twice, numbers accepted only when clean, events deduplicated on
-- (userId, sessionId, itemInSession, ts) keeping the lowest (source_file,
-- line_number), songs on song_id keeping the most complete, plays matched to
-- songs on the trimmed, case-folded title and artist with the duration within
-- 0.5 s (var song_match_duration_tolerance_seconds), ids longer than 255
-- characters (var max_id_length) dropped. Each payload is parsed once.
--
-- Run it in one transaction: psql -1 -f benchmarks/floor.sql, or psycopg.
-- PostgreSQL 15+ (the case-folding collation is chosen as dbt's
-- unicode_case_collation macro chooses it).

drop schema if exists floor cascade;
create schema floor;

-- Small helpers, as SQL functions PostgreSQL inlines (one expression each).
create function floor.num(value text) returns numeric
language sql immutable parallel safe as $$
    select case
        when length(btrim(value)) <= 200
            and btrim(value)
            ~ '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
            then cast(btrim(value) as numeric)
    end
$$;

create function floor.int4_or_null(value numeric) returns integer
language sql immutable parallel safe as $$
    select case
        when value = floor(value) and value between -2147483648 and 2147483647
            then cast(value as integer)
    end
$$;

create function floor.int8_or_null(value numeric) returns bigint
language sql immutable parallel safe as $$
    select case
        when value = floor(value)
            and value between -9223372036854775808 and 9223372036854775807
            then cast(value as bigint)
    end
$$;

create function floor.epoch_ms(value numeric) returns timestamp
language sql immutable parallel safe as $$
    select case
        when value >= 0 and value < 4102444800000
            then timestamp '1970-01-01'
            + cast(round(value) as bigint) * interval '1 millisecond'
    end
$$;

create function floor.repair(value text) returns text
language sql immutable parallel safe as $$
    select case
        when value ~ '[\u00C2-\u00F4][\u0080-\u00BF]'
            and value ~ (
                '^(?:[\u0001-\u007F]'
                || '|[\u00C2-\u00DF][\u0080-\u00BF]'
                || '|\u00E0[\u00A0-\u00BF][\u0080-\u00BF]'
                || '|[\u00E1-\u00EC\u00EE\u00EF][\u0080-\u00BF]{2}'
                || '|\u00ED[\u0080-\u009F][\u0080-\u00BF]'
                || '|\u00F0[\u0090-\u00BF][\u0080-\u00BF]{2}'
                || '|[\u00F1-\u00F3][\u0080-\u00BF]{3}'
                || '|\u00F4[\u0080-\u008F][\u0080-\u00BF]{2}'
                || ')*$'
            )
            then convert_from(convert_to(value, 'LATIN1'), 'UTF8')
        else value
    end
$$;

-- The match key folds case under a Unicode collation when the server has one.
do $collation$
declare
    chosen text := (
        select collname from pg_catalog.pg_collation
        where collname in ('pg_c_utf8', 'und-x-icu')
        order by collname = 'pg_c_utf8' desc limit 1
    );
begin
    execute format(
        'create function floor.match_key(value text) returns text '
        'language sql immutable parallel safe as '
        '$f$ select lower(trim(regexp_replace(value, %L, %L, %L))%s) $f$',
        '\s+', ' ', 'g',
        case when chosen is null then '' else format(' collate %I', chosen) end
    );
end
$collation$;

-- Events, parsed once: every field as text, repaired, typed, keyed.
create temporary table events on commit drop as
with

fields as (
    select
        source_file,
        line_number,
        trim(payload ->> 'userId') as user_id_text,
        trim(payload ->> 'sessionId') as session_id_text,
        trim(payload ->> 'itemInSession') as item_text,
        trim(payload ->> 'ts') as ts_text,
        trim(payload ->> 'length') as length_text,
        nullif(trim(payload ->> 'firstName'), '') as first_name_as_logged,
        nullif(trim(payload ->> 'lastName'), '') as last_name_as_logged,
        upper(nullif(trim(payload ->> 'gender'), '')) as gender,
        lower(nullif(trim(payload ->> 'level'), '')) as level,
        nullif(trim(payload ->> 'location'), '') as location_as_logged,
        nullif(trim(payload ->> 'userAgent'), '') as user_agent_text,
        nullif(trim(payload ->> 'page'), '') as page,
        nullif(trim(payload ->> 'song'), '') as song_title_as_logged,
        nullif(trim(payload ->> 'artist'), '') as artist_name_as_logged
    from raw.events
),

-- Two steps, each fenced (offset 0): a function is inlined only when its
-- argument is a plain column, and then runs once per row.
repaired_once as (
    select
        *,
        floor.repair(first_name_as_logged) as first_name_once,
        floor.repair(last_name_as_logged) as last_name_once,
        floor.repair(location_as_logged) as location_once,
        floor.repair(song_title_as_logged) as song_title_once,
        floor.repair(artist_name_as_logged) as artist_name_once,
        floor.num(user_id_text) as user_id_number,
        floor.num(session_id_text) as session_id_number,
        floor.num(item_text) as item_number,
        floor.num(ts_text) as ts_number,
        floor.num(length_text) as song_length
    from fields
    offset 0
),

repaired as (
    select
        *,
        floor.repair(first_name_once) as first_name,
        floor.repair(last_name_once) as last_name,
        floor.repair(location_once) as location,
        floor.repair(song_title_once) as song_title,
        floor.repair(artist_name_once) as artist_name
    from repaired_once
    offset 0
),

typed as (
    select
        *,
        coalesce(
            cast(floor.int8_or_null(user_id_number) as text),
            nullif(case when length(user_id_text) <= 255 then user_id_text end, '')
        ) as user_id,
        floor.int4_or_null(session_id_number) as session_id,
        floor.int4_or_null(item_number) as item_in_session,
        floor.int8_or_null(ts_number) as ts_ms,
        coalesce(page = 'NextSong', false) as is_song_play,
        case
            when length(user_agent_text) >= 2
                and left(user_agent_text, 1) = '"'
                and right(user_agent_text, 1) = '"'
                then substring(user_agent_text, 2, length(user_agent_text) - 2)
            else user_agent_text
        end as user_agent,
        floor.match_key(song_title) as song_match_key,
        floor.match_key(artist_name) as artist_match_key
    from repaired
    offset 0
)

select
    source_file,
    line_number,
    user_id,
    coalesce(cast(session_id as text), session_id_text) as session_key,
    coalesce(cast(item_in_session as text), item_text) as item_key,
    coalesce(cast(ts_ms as text), ts_text) as ts_key,
    session_id,
    item_in_session,
    first_name,
    last_name,
    gender,
    level,
    location,
    user_agent,
    song_title_as_logged,
    artist_name_as_logged,
    song_match_key,
    artist_match_key,
    song_length,
    is_song_play,
    floor.epoch_ms(ts_ms) as event_at
from typed;

-- One row per event: a line delivered twice counts once (the lowest file, line).
create temporary table distinct_events on commit drop as
select
    md5(
        coalesce(user_id, '_dbt_utils_surrogate_key_null_') || '-'
        || coalesce(session_key, '_dbt_utils_surrogate_key_null_') || '-'
        || coalesce(item_key, '_dbt_utils_surrogate_key_null_') || '-'
        || coalesce(ts_key, '_dbt_utils_surrogate_key_null_')
    ) as event_id,
    *
from (
    select distinct on (user_id, session_key, item_key, ts_key) *
    from events
    order by user_id, session_key, item_key, ts_key, source_file, line_number
) as firsts;

-- Songs, parsed once, one row per song_id (the most complete delivery).
create temporary table song_rows on commit drop as
with

fields as (
    select
        source_file,
        line_number,
        case
            when length(nullif(trim(payload ->> 'song_id'), '')) <= 255
                then nullif(trim(payload ->> 'song_id'), '')
        end as song_id,
        case
            when length(nullif(trim(payload ->> 'artist_id'), '')) <= 255
                then nullif(trim(payload ->> 'artist_id'), '')
        end as artist_id,
        nullif(trim(payload ->> 'title'), '') as title,
        nullif(trim(payload ->> 'artist_name'), '') as artist_name,
        nullif(trim(payload ->> 'artist_location'), '') as artist_location,
        trim(payload ->> 'duration') as duration_text,
        trim(payload ->> 'year') as year_text,
        trim(payload ->> 'artist_latitude') as latitude_text,
        trim(payload ->> 'artist_longitude') as longitude_text
    from raw.songs
),

numbers as (
    select
        *,
        floor.num(duration_text) as duration_number,
        floor.num(year_text) as year_number,
        floor.num(latitude_text) as latitude_number,
        floor.num(longitude_text) as longitude_number
    from fields
    offset 0
),

typed as (
    select
        source_file,
        line_number,
        song_id,
        artist_id,
        title,
        artist_name,
        artist_location,
        floor.match_key(title) as title_match_key,
        floor.match_key(artist_name) as artist_match_key,
        case when duration_number > 0 then duration_number end as duration,
        nullif(floor.int4_or_null(year_number), 0) as year,
        case
            when latitude_number between -90 and 90 then latitude_number
        end as artist_latitude,
        case
            when longitude_number between -180 and 180 then longitude_number
        end as artist_longitude
    from numbers
    where song_id is not null
)

select distinct on (song_id) *
from typed
order by
    song_id,
    (title is not null)::int + (artist_id is not null)::int
    + (artist_name is not null)::int + (artist_location is not null)::int
    + (duration is not null)::int + (year is not null)::int
    + (artist_latitude is not null)::int + (artist_longitude is not null)::int
    desc,
    source_file,
    line_number;

create table floor.songs (
    song_id text primary key,
    title text,
    artist_id text,
    year integer,
    duration numeric
);
insert into floor.songs
select song_id, title, artist_id, year, duration from song_rows;

create table floor.artists (
    artist_id text primary key,
    name text,
    location text,
    latitude numeric,
    longitude numeric
);
insert into floor.artists
select distinct on (artist_id)
    artist_id, artist_name, artist_location, artist_latitude, artist_longitude
from song_rows
where artist_id is not null
order by
    artist_id,
    (artist_name is not null)::int + (artist_location is not null)::int
    + (artist_latitude is not null)::int + (artist_longitude is not null)::int
    desc,
    source_file,
    line_number;

create table floor.songplays (
    songplay_id text primary key,
    start_time timestamp not null,
    user_id text,
    level text,
    song_id text,
    artist_id text,
    song_match_rule text,
    session_id integer,
    location text,
    user_agent text
);
insert into floor.songplays
with

plays as (
    select * from distinct_events where is_song_play and event_at is not null
),

matches as (
    select distinct on (plays.event_id)
        plays.event_id,
        song_rows.song_id,
        song_rows.artist_id,
        case
            when plays.song_title_as_logged = song_rows.title
                and plays.artist_name_as_logged = song_rows.artist_name
                and plays.song_length = song_rows.duration
                then 'exact'
            else 'normalized'
        end as song_match_rule
    from plays
    inner join song_rows
        on plays.song_match_key = song_rows.title_match_key
        and plays.artist_match_key = song_rows.artist_match_key
        and abs(plays.song_length - song_rows.duration) <= 0.5
    order by
        plays.event_id,
        (
            plays.song_title_as_logged = song_rows.title
            and plays.artist_name_as_logged = song_rows.artist_name
            and plays.song_length = song_rows.duration
        ) desc,
        abs(plays.song_length - song_rows.duration),
        song_rows.song_id
)

select
    plays.event_id,
    plays.event_at,
    plays.user_id,
    plays.level,
    matches.song_id,
    matches.artist_id,
    matches.song_match_rule,
    plays.session_id,
    plays.location,
    plays.user_agent
from plays
left join matches on plays.event_id = matches.event_id;

create table floor.users (
    user_id text primary key,
    first_name text,
    last_name text,
    gender text,
    level text
);
insert into floor.users
with

latest as (
    select distinct on (user_id)
        user_id, first_name, last_name, gender
    from distinct_events
    where user_id is not null
    order by
        user_id,
        event_at desc nulls last,
        session_id desc nulls last,
        item_in_session desc nulls last,
        event_id
),

levels as (
    select distinct on (user_id) user_id, level
    from distinct_events
    where user_id is not null and level is not null and event_at is not null
    order by
        user_id,
        event_at desc,
        session_id desc nulls last,
        item_in_session desc nulls last,
        event_id
)

select latest.user_id, latest.first_name, latest.last_name, latest.gender, levels.level
from latest
left join levels on latest.user_id = levels.user_id;

create table floor.time (
    start_time timestamp primary key,
    hour integer,
    day integer,
    week integer,
    month integer,
    year integer,
    weekday integer,
    weekday_name text,
    is_weekend boolean,
    date_key integer
);
insert into floor.time
select
    start_time,
    extract(hour from start_time)::int,
    extract(day from start_time)::int,
    extract(week from start_time)::int,
    extract(month from start_time)::int,
    extract(year from start_time)::int,
    extract(isodow from start_time)::int,
    (array['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday',
        'Sunday'])[extract(isodow from start_time)::int],
    extract(isodow from start_time) >= 6,
    (extract(year from start_time) * 10000 + extract(month from start_time) * 100
        + extract(day from start_time))::int
from (select distinct start_time from floor.songplays) as start_times;
