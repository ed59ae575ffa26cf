{#- Removes one pair of double quotes that wraps the whole value (the feed
    writes most user agents as "\"Mozilla/5.0 ...\""); other values pass
    unchanged. -#}
{% macro strip_wrapping_quotes(expression) -%}
    case
        when
            length({{ expression }}) >= 2
            and substring({{ expression }}, 1, 1) = '"'
            and substring({{ expression }}, length({{ expression }}), 1) = '"'
            then substring({{ expression }}, 2, length({{ expression }}) - 2)
        else {{ expression }}
    end
{%- endmacro %}
