{#- ISO 8601 week number (1-53; the week with the year's first Thursday is
    week 1) of a timestamp, as integer. -#}
{% macro iso_week(expression) -%}
    {{ return(adapter.dispatch('iso_week', 'sparkify')(expression)) }}
{%- endmacro %}

{% macro default__iso_week(expression) -%}
    {{ exceptions.raise_compiler_error(
        "iso_week has no implementation for " ~ adapter.type()
        ~ ": add a " ~ adapter.type() ~ "__iso_week macro"
    ) }}
{%- endmacro %}

{% macro postgres__iso_week(expression) -%}
    cast(extract(week from {{ expression }}) as integer)
{%- endmacro %}

{#- ISO 8601 day of the week of a timestamp, as integer:
    1 = Monday ... 7 = Sunday. -#}
{% macro iso_weekday(expression) -%}
    {{ return(adapter.dispatch('iso_weekday', 'sparkify')(expression)) }}
{%- endmacro %}

{% macro default__iso_weekday(expression) -%}
    {{ exceptions.raise_compiler_error(
        "iso_weekday has no implementation for " ~ adapter.type()
        ~ ": add a " ~ adapter.type() ~ "__iso_weekday macro"
    ) }}
{%- endmacro %}

{% macro postgres__iso_weekday(expression) -%}
    cast(extract(isodow from {{ expression }}) as integer)
{%- endmacro %}

{#- weekofyear is ISO 8601's week. -#}
{% macro spark__iso_week(expression) -%}
    cast(weekofyear({{ expression }}) as integer)
{%- endmacro %}

{#- Not dayofweek, which counts Sunday as 1: weekday is 0 on Monday. -#}
{% macro spark__iso_weekday(expression) -%}
    cast(weekday({{ expression }}) + 1 as integer)
{%- endmacro %}
