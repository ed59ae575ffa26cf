{#- Contracts on Spark. The models' YAML names PostgreSQL's types (text,
    numeric); Spark spells them string and decimal(p, s). These overrides
    of dbt's contract check (dispatched by dbt, so they apply on Spark only)
    read the YAML types in Spark's words, and compare a numeric column by
    kind, as PostgreSQL's bare `numeric` accepts any precision. Spark
    enforces no constraint: the keys are held by data tests there
    (docs/spark.md). -#}
{% macro spark_type_of(data_type) -%}
    {%- set words = {'text': 'string', 'numeric': 'decimal(38, 12)'} -%}
    {%- set bare = data_type.strip().lower() -%}
    {%- if bare in words -%}
        {{ return(words[bare]) }}
    {%- elif bare.startswith('numeric(') -%}
        {{ return('decimal' ~ bare[7:]) }}
    {%- endif -%}
    {{ return(data_type) }}
{%- endmacro %}

{% macro spark__get_empty_schema_sql(columns) -%}
    select
    {% for name in columns -%}
        {%- set column = columns[name] -%}
        {%- if column['data_type'] is not defined -%}
            {{ exceptions.column_type_missing(column_names=[column['name']]) }}
        {%- endif %}
        cast(null as {{ spark_type_of(column['data_type']) }})
        as {{ column['name'] }}{{ ", " if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{% macro spark__format_column(column) -%}
    {%- set data_type = column.dtype.lower() -%}
    {%- if data_type.startswith('decimal') -%}
        {%- set data_type = 'decimal' -%}
    {%- endif -%}
    {{ return({
        'name': column.name,
        'data_type': data_type,
        'formatted': column.column.lower() ~ ' ' ~ data_type,
    }) }}
{%- endmacro %}

{#- Unit test fixtures cast their values to the YAML types: in Spark's
    words there too. -#}
{% macro spark__safe_cast(field, type) -%}
    cast({{ field }} as {{ spark_type_of(type) }})
{%- endmacro %}

{% macro spark__cast(field, type) -%}
    cast({{ field }} as {{ spark_type_of(type) }})
{%- endmacro %}

{#- Spark declares contract constraints but enforces none, and a Parquet
    table cannot even record not null: nothing to persist. The keys are
    held by data tests on Spark (docs/spark.md). -#}
{% macro spark__persist_constraints(relation, model) -%}
{%- endmacro %}

{#- Whether the engine itself holds a contract's primary_key and not_null
    constraints. Where it does not, the singular test
    contract_constraints_hold checks them as data. -#}
{% macro engine_enforces_constraints() -%}
    {{ return(adapter.dispatch('engine_enforces_constraints', 'sparkify')()) }}
{%- endmacro %}

{% macro default__engine_enforces_constraints() -%}
    {{ return(false) }}
{%- endmacro %}

{% macro postgres__engine_enforces_constraints() -%}
    {{ return(true) }}
{%- endmacro %}
