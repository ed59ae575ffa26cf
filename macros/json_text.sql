{#- The text of one top-level field of a JSON object column, null when the
    field is missing or JSON null. Numbers come back as their JSON text. -#}
{% macro json_text(column, field) -%}
    {{ return(adapter.dispatch('json_text', 'sparkify')(column, field)) }}
{%- endmacro %}

{% macro default__json_text(column, field) -%}
    json_value({{ column }}, '$.{{ field }}')
{%- endmacro %}

{% macro postgres__json_text(column, field) -%}
    ({{ column }} ->> '{{ field }}')
{%- endmacro %}

{#- The payload is a string on Spark (the lake lands lines as text). -#}
{% macro spark__json_text(column, field) -%}
    get_json_object({{ column }}, '$.{{ field }}')
{%- endmacro %}
