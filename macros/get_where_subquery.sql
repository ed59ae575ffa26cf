{#- dbt's filter for generic tests (the `where` config), overridden to add
    one placeholder: in a test's `where`, `__watermark_before_this_build__`
    stands for the watermark the tested model recorded before it was built
    in this invocation (see watermark_before_this_build). So

        where: "loaded_at > __watermark_before_this_build__"

    makes an incremental `dbt build` test the rows it wrote, while `dbt test`
    and full builds test every row. A placeholder, because dbt renders a
    test's config before project macros exist (its documented way to add
    logic to `where`). The watermark is put in as a constant, read when the
    test is compiled (after its model was built): with a subquery, the
    planner would guess a third of the table and read all of it. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set watermark = watermark_literal(relation.identifier) -%}
        {%- set where = where | replace('__watermark_before_this_build__', watermark) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro watermark_literal(model_name) -%}
    {%- if execute -%}
        {%- set query -%}
            select cast({{ watermark_before_this_build(model_name) }} as text)
        {%- endset -%}
        {%- set value = run_query(query).columns[0].values()[0] -%}
        cast('{{ value }}' as timestamp with time zone)
    {%- else -%}
        {{ watermark_before_this_build(model_name) }}
    {%- endif -%}
{%- endmacro %}
