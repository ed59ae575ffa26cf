{#- A timestamp expression moved back by a whole number of hours. -#}
{% macro subtract_hours(expression, hours) -%}
    {{ return(
        adapter.dispatch('subtract_hours', 'sparkify')(expression, hours)
    ) }}
{%- endmacro %}

{% macro default__subtract_hours(expression, hours) -%}
    {{ dbt.dateadd('hour', -(hours | int), expression) }}
{%- endmacro %}

{% macro postgres__subtract_hours(expression, hours) -%}
    ({{ expression }} - interval '{{ hours | int }} hours')
{%- endmacro %}

{% macro spark__subtract_hours(expression, hours) -%}
    ({{ expression }} - interval {{ hours | int }} hours)
{%- endmacro %}
