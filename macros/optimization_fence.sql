{#- Placed at the end of a CTE's select: stops the optimizer from inlining
    the CTE into each place that uses its columns, so expensive per-row
    expressions (JSON parsing, regular expressions) run once per row instead
    of once per reference. PostgreSQL: `offset 0`; by default nothing. -#}
{% macro optimization_fence() -%}
    {{ return(adapter.dispatch('optimization_fence', 'sparkify')()) }}
{%- endmacro %}

{% macro default__optimization_fence() -%}
{%- endmacro %}

{% macro postgres__optimization_fence() -%}
    offset 0
{%- endmacro %}
