{#- audit.build_watermarks: each incremental model's watermark before it was
    built, per dbt invocation, so that the tests of a build can check the rows
    that build wrote (built_this_run). Created by on-run-start. -#}
{% macro build_watermarks_relation() -%}
    {{ return(api.Relation.create(
        database=target.database,
        schema=generate_schema_name('audit', none),
        identifier='build_watermarks',
    )) }}
{%- endmacro %}

{% macro create_build_watermarks() -%}
    {{ return(adapter.dispatch('create_build_watermarks', 'sparkify')()) }}
{%- endmacro %}

{% macro default__create_build_watermarks() -%}
    {%- set relation = build_watermarks_relation() -%}
    create schema if not exists {{ relation.schema }};
    {{ build_watermarks_ddl(relation) }}
{%- endmacro %}

{#- Not CREATE SCHEMA IF NOT EXISTS: that needs CREATE on the database even
    when the schema exists, and the transformer role owns its schemas only
    (ingest/setup_roles.py). -#}
{% macro postgres__create_build_watermarks() -%}
    {%- set relation = build_watermarks_relation() -%}
    do $$
    begin
        if to_regnamespace('{{ relation.schema }}') is null then
            create schema {{ relation.schema }};
        end if;
    end
    $$;
    {{ build_watermarks_ddl(relation) }}
{%- endmacro %}

{% macro build_watermarks_ddl(relation) -%}
    create table if not exists {{ relation }} (
        invocation_id text not null,
        model_name text not null,
        previous_watermark timestamp with time zone not null,
        recorded_at timestamp with time zone not null default current_timestamp
    );
    -- A record is only read by the invocation that wrote it.
    delete from {{ relation }}
    where recorded_at < {{ subtract_hours('current_timestamp', 24 * 7) }}
{%- endmacro %}
