{#- One row per calendar day from start_date to end_date, both included, as
    a column `date_day` of type date. Both arguments are SQL expressions that
    give a date (a scalar subquery is fine). -#}
{% macro date_series(start_date, end_date) -%}
    {{ return(
        adapter.dispatch('date_series', 'sparkify')(start_date, end_date)
    ) }}
{%- endmacro %}

{% macro default__date_series(start_date, end_date) -%}
    {{ exceptions.raise_compiler_error(
        "date_series has no implementation for " ~ adapter.type()
        ~ ": add a " ~ adapter.type() ~ "__date_series macro"
    ) }}
{%- endmacro %}

{% macro postgres__date_series(start_date, end_date) -%}
    select cast(series.day_start as date) as date_day
    from generate_series(
        cast(cast({{ start_date }} as date) as timestamp),
        cast(cast({{ end_date }} as date) as timestamp),
        interval '1 day'
    ) as series (day_start)
{%- endmacro %}

{#- The English name of an ISO day of the week (1 = Monday ... 7 = Sunday),
    the same whatever the server's locale. Portable SQL. -#}
{% macro iso_weekday_name(iso_weekday) -%}
    case {{ iso_weekday }}
        when 1 then 'Monday'
        when 2 then 'Tuesday'
        when 3 then 'Wednesday'
        when 4 then 'Thursday'
        when 5 then 'Friday'
        when 6 then 'Saturday'
        when 7 then 'Sunday'
    end
{%- endmacro %}

{#- A date as the integer yyyymmdd, the key of the `dates` dimension:
    readable, sortable and the same on every engine. Portable SQL. -#}
{% macro date_key(expression) -%}
    cast(
        extract(year from {{ expression }}) * 10000
        + extract(month from {{ expression }}) * 100
        + extract(day from {{ expression }})
        as integer
    )
{%- endmacro %}

{#- The day after a date expression, as a date. -#}
{% macro next_day(date_expression) -%}
    {{ return(adapter.dispatch('next_day', 'sparkify')(date_expression)) }}
{%- endmacro %}

{% macro default__next_day(date_expression) -%}
    cast({{ dbt.dateadd('day', 1, date_expression) }} as date)
{%- endmacro %}

{% macro postgres__next_day(date_expression) -%}
    ({{ date_expression }} + 1)
{%- endmacro %}

{% macro spark__date_series(start_date, end_date) -%}
    select explode(sequence(
        cast({{ start_date }} as date),
        cast({{ end_date }} as date),
        interval 1 day
    )) as date_day
{%- endmacro %}

{% macro spark__next_day(date_expression) -%}
    date_add({{ date_expression }}, 1)
{%- endmacro %}

{#- The seconds from one timestamp to a later one, as an exact number. -#}
{% macro seconds_between(start_at, end_at) -%}
    {{ return(adapter.dispatch('seconds_between', 'sparkify')(
        start_at, end_at
    )) }}
{%- endmacro %}

{% macro default__seconds_between(start_at, end_at) -%}
    extract(epoch from {{ end_at }} - {{ start_at }})
{%- endmacro %}

{% macro spark__seconds_between(start_at, end_at) -%}
    (
        cast(unix_micros({{ end_at }}) - unix_micros({{ start_at }}) as decimal(38, 6))
        / 1000000
    )
{%- endmacro %}
