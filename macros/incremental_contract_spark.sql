{#- The incremental contract (macros/incremental_contract.sql) on Spark,
    where a build has no transaction to put its claim and its rows in
    together. The order makes it safe instead (docs/spark.md):

    1. the pre-hook (spark__claim_loads) works out which loads the model
       now consumes, without recording them: a temporary view
       <model>__claimed, and the touched partitions, <model>__touched
       (cached: computed once);
    2. the strategy `rewrite` (spark_rewrite_sql) writes the model's whole
       new state (the rows of untouched partitions as they were, plus the
       rebuilt ones) to a scratch table, then replaces the table's rows with
       it (insert overwrite): a partition that became empty is gone;
    3. the post-hook (spark__refresh_statistics) records the claim in
       audit.consumed_loads, after the rows are written.
    A build killed before 3 claims the same loads again next time, and
    rewriting partitions from whole state is idempotent: nothing is lost. -#}

-- The macros below render nothing here; sqlfluff would judge the layout of
-- their Jinja as if it were SQL.
-- noqa: disable=LT02

{#- One partition per model: a full build replaces the model's rows (a
    Parquet table has no delete). -#}
{% macro spark__create_consumed_loads() -%}
    {%- set relation = consumed_loads_relation() -%}
    {%- if execute -%}
        {%- do run_query(
            'create schema if not exists ' ~ relation.schema
        ) -%}
    {%- endif -%}
    create table if not exists {{ relation }} (
        load_id bigint,
        invocation_id string,
        consumed_at timestamp,
        model_name string
    )
    using parquet
    partitioned by (model_name)
{%- endmacro %}

{% macro claimed_loads_view() -%}
    {{ return(this.identifier ~ '__claimed') }}
{%- endmacro %}

{% macro spark__claimed_loads() -%}
    (
        select claimed.load_id
        from {{ claimed_loads_view() }} as claimed
        where claimed.load_id is not null
    )
{%- endmacro %}

{#- Renders nothing: the statements run here, one at a time. -#}
{% macro spark__claim_loads() -%}
    {%- set policy = incremental_policy() -%}
    {%- if policy is none or not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set full_build = not is_incremental() -%}
    {%- set claimable = claimable_loads(forget_consumed=full_build) -%}
    {%- set load_ids = run_query(claimable).columns[0].values() | list -%}
    {#- One row per load, and one without a load that says whether this is
        a full build, so that the post-hook knows even when no load is new. -#}
    {%- set rows = [
        '(cast(null as bigint), ' ~ ('true' if full_build else 'false') ~ ')'
    ] -%}
    {%- for load_id in load_ids -%}
        {%- do rows.append('(' ~ load_id ~ ', false)') -%}
    {%- endfor -%}
    {%- set claimed = 'select * from values ' ~ rows | join(', ')
        ~ ' as claimed (load_id, is_full_build)' -%}
    {%- do run_query(
        'create or replace temporary view ' ~ claimed_loads_view()
        ~ ' as ' ~ claimed
    ) -%}
    {#- Cached (computed now, once): the model's SQL and the strategy read
        the touched set several times, and it reads the parents. -#}
    {%- do run_query(
        'uncache table if exists ' ~ touched_partitions_relation()
    ) -%}
    {%- do run_query('drop view if exists ' ~ touched_partitions_relation()) -%}
    {%- if not full_build -%}
        {%- do run_query(
            'cache table ' ~ touched_partitions_relation()
            ~ ' as ' ~ touched_set(policy)
        ) -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- The post-hook: records the claim once the rows are written, and drops
    the scratch table. Renders nothing. -#}
{% macro spark__refresh_statistics() -%}
    {%- if incremental_policy() is none or not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set consumed = consumed_loads_relation() -%}
    {%- set name = this.identifier -%}
    {%- do run_query('drop table if exists ' ~ rewrite_scratch_relation()) -%}
    {%- do run_query(
        'uncache table if exists ' ~ touched_partitions_relation()
    ) -%}
    {%- set full_build = run_query(
        'select count(*) from ' ~ claimed_loads_view()
        ~ ' where is_full_build'
    ).columns[0].values()[0] > 0 -%}
    {%- if full_build -%}
        {%- do run_query(
            'alter table ' ~ consumed ~ ' drop if exists partition'
            ~ " (model_name = '" ~ name ~ "')"
        ) -%}
    {%- endif -%}
    {%- do run_query(
        'insert into ' ~ consumed
        ~ " partition (model_name = '" ~ name ~ "')"
        ~ " select load_id, '" ~ invocation_id ~ "', current_timestamp()"
        ~ ' from ' ~ claimed_loads_view() ~ ' where load_id is not null'
    ) -%}
    {{ return('') }}
{%- endmacro %}

{% macro rewrite_scratch_relation() -%}
    {{ return(this.incorporate(
        path={'identifier': this.identifier ~ '__rewrite'}
    )) }}
{%- endmacro %}

{#- The strategy `rewrite` on Spark (see the top of this file). The scratch
    table holds the new state first: Spark cannot overwrite a table in the
    statement that reads it. Returns the last statement, which the
    materialization runs. -#}
{% macro spark_rewrite_sql(source_relation, target_relation) -%}
    {%- set policy = incremental_policy() -%}
    {%- set spec = incremental_policies()[policy] -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set partition_by = meta.get('partition_by')
        or spec.columns | join(', ') -%}
    {%- set columns = adapter.get_columns_in_relation(target_relation)
        | map(attribute='quoted') | join(', ') -%}
    {%- set everything = run_query(
        'select ' ~ claimed_corrections(spec.corrected_by)
    ).columns[0].values()[0] -%}
    {%- set scratch = rewrite_scratch_relation() -%}
    {%- do run_query('drop table if exists ' ~ scratch) -%}
    {%- set new_state -%}
        create table {{ scratch }} using parquet as
        {%- if not everything %}
        select {{ columns }}
        from {{ target_relation }}
        where not coalesce({{ touched(partition_by) }}, false)
        union all
        {%- endif %}
        select {{ columns }}
        from {{ source_relation }}
    {%- endset -%}
    {%- do run_query(new_state) -%}
    insert overwrite table {{ target_relation }}
    select {{ columns }} from {{ scratch }}
{%- endmacro %}

{#- dbt-spark's own choice of strategy, with `rewrite` added (dbt-postgres
    finds a custom strategy by its macro's name; dbt-spark knows only its
    own). The others are dbt-spark's. -#}
{% macro dbt_spark_validate_get_incremental_strategy(
    raw_strategy, file_format
) -%}
    {%- if raw_strategy not in ['rewrite', 'append', 'insert_overwrite'] -%}
        {%- do exceptions.raise_compiler_error(
            "incremental strategy " ~ raw_strategy ~ " is not one this"
            ~ " project uses on Spark: rewrite, append, insert_overwrite"
        ) -%}
    {%- endif -%}
    {{ return(raw_strategy) }}
{%- endmacro %}

{% macro dbt_spark_get_incremental_sql(
    strategy, source, target, existing, unique_key, incremental_predicates
) -%}
    {%- if strategy == 'rewrite' -%}
        {{ spark_rewrite_sql(source, target) }}
    {%- elif strategy == 'append' -%}
        {{ get_insert_into_sql(source, target) }}
    {%- else -%}
        {{ get_insert_overwrite_sql(source, target, existing) }}
    {%- endif -%}
{%- endmacro %}
