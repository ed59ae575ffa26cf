{#- A custom schema is used as-is (marts land in `analytics`, not
    `staging_analytics`); without one, the target's schema is used. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
