{#- A numeric value as integer (or bigint) when it is whole and fits the
    type; null otherwise. Portable SQL, no dispatch needed. -#}
{% macro to_integer_or_null(expression, type='integer') -%}
    {%- set bounds = {
        'integer': ('-2147483648', '2147483647'),
        'bigint': ('-9223372036854775808', '9223372036854775807'),
    } -%}
    {%- if type not in bounds -%}
        {{ exceptions.raise_compiler_error(
            "to_integer_or_null: type must be integer or bigint, not " ~ type
        ) }}
    {%- endif -%}
    case
        when
            {{ expression }} = floor({{ expression }})
            and {{ expression }} between {{ bounds[type][0] }}
            and {{ bounds[type][1] }}
            then cast({{ expression }} as {{ type }})
    end
{%- endmacro %}
