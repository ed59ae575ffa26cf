{#- An identifier's text, or null when it is longer than
    var('max_id_length') characters: a key that long is damage, not an id,
    and PostgreSQL cannot index it (a btree entry holds about 2.7 kB), so it
    would fail the marts' primary keys. Staging flags or counts the nulled
    ones. Portable SQL. -#}
{% macro id_or_null(expression) -%}
    case
        when length({{ expression }}) <= {{ var('max_id_length') | int }}
            then {{ expression }}
    end
{%- endmacro %}
