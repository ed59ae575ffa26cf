{#- An md5 hex key over a list of column expressions, like
    dbt_utils.generate_surrogate_key: every value is cast to text first
    (type-safe), a null becomes a fixed placeholder (null-safe, and distinct
    from the empty string), and the values are joined with '-'. The
    placeholder is the one dbt_utils uses, so keys stay comparable. -#}
{% macro surrogate_key(field_list) -%}
    {%- if field_list is string or field_list | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "surrogate_key expects a non-empty list of column expressions"
        ) }}
    {%- endif -%}
    {{ return(adapter.dispatch('surrogate_key', 'sparkify')(field_list)) }}
{%- endmacro %}

{% macro default__surrogate_key(field_list) -%}
    {%- set fields = [] -%}
    {%- for field in field_list -%}
        {%- do fields.append(
            "coalesce(cast(" ~ field ~ " as " ~ dbt.type_string() ~ "), "
            ~ "'_dbt_utils_surrogate_key_null_')"
        ) -%}
        {%- if not loop.last -%}
            {%- do fields.append("'-'") -%}
        {%- endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(fields)) }}
{%- endmacro %}

{% macro postgres__surrogate_key(field_list) -%}
    {%- set fields = [] -%}
    {%- for field in field_list -%}
        {%- do fields.append(
            "coalesce(cast(" ~ field ~ " as text), "
            ~ "'_dbt_utils_surrogate_key_null_')"
        ) -%}
    {%- endfor -%}
    md5({{ fields | join(" || '-' || ") }})
{%- endmacro %}
