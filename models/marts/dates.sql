-- A date spine: every calendar day from the first to the last song play,
-- with or without plays, so that a report by day shows the quiet days too.

with

-- The first and last play, each read from the index on start_time (one CTE
-- used twice would be materialized: every play read).
calendar_days as (
    {{ date_series(
        "(select coalesce(min(start_time), current_date) from "
            ~ ref('songplays') ~ ")",
        "(select coalesce(max(start_time), current_date) from "
            ~ ref('songplays') ~ ")",
    ) }}
),

parts as (
    select
        date_day,
        cast(extract(year from date_day) as integer) as year,
        cast(extract(quarter from date_day) as integer) as quarter,
        cast(extract(month from date_day) as integer) as month,
        cast(extract(day from date_day) as integer) as day,
        {{ iso_week('date_day') }} as week,
        {{ iso_weekday('date_day') }} as weekday,
        {{ date_key('date_day') }} as date_key
    from calendar_days
),

final as (
    select
        date_key,
        date_day,
        year,
        quarter,
        month,
        day,
        week,
        weekday,
        {{ iso_weekday_name('weekday') }} as weekday_name,
        weekday >= 6 as is_weekend
    from parts
)

select * from final
