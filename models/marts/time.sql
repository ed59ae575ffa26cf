{{
    config(
        materialized='incremental',
        unique_key='start_time',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        pre_hook=[
            "{{ wait_for_loads() }}",
            "{{ rebuild_all_with('songplays') }}",
            "{{ load_build_watermark('songplays') }}",
        ],
        post_hook=["{{ refresh_statistics() }}"],
    )
}}

-- One row per distinct play start: its calendar parts. Incremental: the
-- parts are a function of start_time alone, so a build adds the start times
-- of the plays songplays built in this run. When songplays was built in
-- full (or not built), a pre-hook empties this table and every start time is
-- read again, so no start time outlives its plays.

with

songplays as (
    select start_time
    from {{ ref('songplays') }}
    {% if is_incremental() %}
        where {{ built_this_run('songplays', 'first_loaded_at') }}
    {% endif %}
),

start_times as (
    select distinct start_time
    from songplays
),

parts as (
    select
        start_time,
        cast(extract(hour from start_time) as integer) as hour,
        cast(extract(day from start_time) as integer) as day,
        {{ iso_week('start_time') }} as week,
        cast(extract(month from start_time) as integer) as month,
        cast(extract(year from start_time) as integer) as year,
        {{ iso_weekday('start_time') }} as weekday,
        {{ date_key('start_time') }} as date_key
    from start_times
),

final as (
    select
        start_time,
        hour,
        day,
        week,
        month,
        year,
        weekday,
        {{ iso_weekday_name('weekday') }} as weekday_name,
        weekday >= 6 as is_weekend,
        date_key
    from parts
)

select * from final
