{#- Reading top-level fields of a JSON object column as text, the same way on
    every engine: null when the field is missing or JSON null, the JSON text
    of a number, boolean, object or array, and of a repeated key the last
    value (as jsonb keeps it). Field names match case-sensitively.

    A model that reads several fields parses the payload once, in a CTE of
    its own, then reads each field from it:
        parse_json_object('payload', ['userId', 'ts']) as payload_json
        ... json_field('payload_json', 'userId') ...
    json_text reads one field straight from the column. -#}
{% macro json_text(column, field) -%}
    {{ return(json_field(parse_json_object(column, [field]), field)) }}
{%- endmacro %}

{#- The column parsed once, for reading these fields with json_field. -#}
{% macro parse_json_object(column, fields) -%}
    {{ return(
        adapter.dispatch('parse_json_object', 'sparkify')(column, fields)
    ) }}
{%- endmacro %}

{#- jsonb and the SQL standard's JSON type are parsed when stored. -#}
{% macro default__parse_json_object(column, fields) -%}
    {{ column }}
{%- endmacro %}

{#- The payload is a string on Spark (the lake lands lines as text):
    from_json with a string for each field. Unlike get_json_object (one parse
    per field, and of a repeated key the first value), it parses once and
    keeps a repeated key's last value, as jsonb does. A raw control character
    inside a string is allowed, as get_json_object allows it: no landed line
    holds one (the loader rejects it), but a Spark SQL literal turns the \t
    of a unit test's JSON into one. -#}
{% macro spark__parse_json_object(column, fields) -%}
    {%- set struct_fields = [] -%}
    {%- for field in fields -%}
        {%- do struct_fields.append(
            '`' ~ field | replace('`', '``') ~ '` string'
        ) -%}
    {%- endfor -%}
    from_json(
        {{ column }},
        '{{ struct_fields | join(", ") }}',
        map('allowUnquotedControlChars', 'true')
    )
{%- endmacro %}

{#- The text of one field of what parse_json_object gave. -#}
{% macro json_field(parsed, field) -%}
    {{ return(adapter.dispatch('json_field', 'sparkify')(parsed, field)) }}
{%- endmacro %}

{% macro default__json_field(parsed, field) -%}
    json_value({{ parsed }}, '$.{{ field }}')
{%- endmacro %}

{% macro postgres__json_field(parsed, field) -%}
    ({{ parsed }} ->> '{{ field }}')
{%- endmacro %}

{% macro spark__json_field(parsed, field) -%}
    {{ parsed }}.`{{ field | replace('`', '``') }}`
{%- endmacro %}
