{#- The adapter's unbounded string type (`text` on PostgreSQL), through
    dbt's cross-database type_string. -#}
{% macro text_type() -%}
    {{ return(dbt.type_string()) }}
{%- endmacro %}
