{#- The incremental contract (macros/incremental_contract.sql) on Spark,
    where a build has no transaction to put its claim and its rows in
    together. The order makes it safe instead (docs/spark.md):

    1. the pre-hook (spark__claim_loads) works out which loads the model
       now consumes, without recording them: a temporary view
       <model>__claimed, and the touched partitions, <model>__touched
       (cached: computed once);
    2. the strategy `rewrite` (spark_rewrite_sql) writes the rows of the
       rewritten partitions, rebuilt from the parents' whole state, to a
       scratch table, then:
       - a model partitioned by day (spark_partition_column: the event_days
         models whose day is a date) overwrites only the partitions those
         rows fall in (dynamic partition overwrite) and drops the
         partitions it rewrote that have no row now;
       - any other model whose table holds no row of the partitions
         rebuilt (new files, days or events) appends the rebuilt rows (a
         killed build that wrote them already finds them there, and
         rewrites);
       - any other model, or any model after a correction, overwrites the
         whole table with its whole new state (the rows of untouched
         partitions as they were, plus the rebuilt ones); a partition that
         became empty is gone;
    3. the post-hook (spark__refresh_statistics) records the claim in
       audit.consumed_loads, only after the rows are written.
    A build killed before 3 has recorded nothing: the next build claims the
    same loads again, so touches the same partitions, and rewrites them
    from whole state. That is idempotent, whatever part of 2 was done (a
    partition overwritten or dropped twice ends the same), so nothing is
    lost and nothing is counted twice. -#}

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

{#- The column an incremental model is partitioned by on Spark, or none.
    An event_days model's meta.rewrite_partition is its day when it holds a
    date: one Parquet partition per day, some 30 for a month of logs. The
    marts partitioned by a timestamp (songplays, time: a partition per row)
    and the other policies (a partition per user, session, event or file
    path) are not partitioned: they keep whole-table rewrite
    (docs/spark.md). -#}
{% macro spark_partition_column() -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set column = meta.get('rewrite_partition') -%}
    {%- if incremental_policy() not in ('event_days', 'event_days_onward')
        or column is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set declared = (model.columns.get(column) or {}).get('data_type') -%}
    {{ return(column if declared in (none, 'date') else none) }}
{%- endmacro %}

{#- dbt-spark's `partitioned by` (or `partition`) clause: the model's own
    partition_by, or else the day of an event_days model, so that a full
    build creates the partitioned table the strategy overwrites. -#}
{% macro spark__partition_cols(label, required=false) -%}
    {%- set columns = config.get('partition_by')
        or spark_partition_column() -%}
    {%- if columns is string -%}
        {%- set columns = [columns] -%}
    {%- endif -%}
    {%- if columns -%}
        {{ label }} ({{ columns | join(', ') }})
    {%- endif -%}
{%- endmacro %}

{#- A table built before its model was partitioned cannot take a
    partition-wise overwrite: a clear error, not Spark's. -#}
{% macro assert_partitioned_by(relation, column) -%}
    {%- set described = run_query('describe table ' ~ relation) -%}
    {%- set names = described.columns[0].values() | list -%}
    {%- set marker = '# Partition Information' -%}
    {%- if marker not in names or column not in names[names.index(marker):] -%}
        {%- do exceptions.raise_compiler_error(
            relation ~ " is not partitioned by " ~ column ~ ": it was built"
            ~ " before its model was; rebuild it once with"
            ~ " dbt build --target spark --full-refresh"
        ) -%}
    {%- endif -%}
{%- endmacro %}

{% macro spark_partition_overwrite_mode(mode) -%}
    {%- do run_query(
        'set spark.sql.sources.partitionOverwriteMode = ' ~ mode
    ) -%}
{%- endmacro %}

{#- The strategy `rewrite` on Spark (see the top of this file). The scratch
    table holds the rebuilt rows first: Spark cannot overwrite a table in
    the statement that reads it, and a model may read itself
    (int_first_plays). Returns the last statement, which the
    materialization runs. -#}
{% macro spark_rewrite_sql(source_relation, target_relation) -%}
    {%- set policy = incremental_policy() -%}
    {%- set spec = incremental_policies()[policy] -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set partition_by = meta.get('rewrite_partition')
        or spec.columns | join(', ') -%}
    {%- set partition_column = spark_partition_column() -%}
    {%- set everything = run_query(
        'select ' ~ claimed_corrections(spec.corrected_by)
    ).columns[0].values()[0] -%}
    {%- if partition_column is none and not everything -%}
        {#- When the table holds no row of the partitions rebuilt (new
            files, new days, new events: the daily append), its whole new
            state is its rows plus the rebuilt ones: append those. A
            partition it holds already (a replaced file, a redelivered
            event, a returning user, or a build killed after its write and
            before its claim, now claiming the same loads again) takes the
            whole rewrite below. -#}
        {%- set held = run_query(
            'select count(*) from ' ~ target_relation
            ~ ' where ' ~ touched(partition_by)
        ).columns[0].values()[0] -%}
        {%- if held == 0 -%}
            {{ return(get_insert_into_sql(source_relation, target_relation)) }}
        {%- endif -%}
    {%- endif -%}
    {%- if partition_column is not none -%}
        {%- do assert_partitioned_by(target_relation, partition_column) -%}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(target_relation)
        | map(attribute='quoted') | join(', ') -%}
    {%- set scratch = rewrite_scratch_relation() -%}
    {%- do run_query('drop table if exists ' ~ scratch) -%}
    {%- set new_rows -%}
        create table {{ scratch }} using parquet as
        {%- if not everything and partition_column is none %}
        select {{ columns }}
        from {{ target_relation }}
        where not coalesce({{ touched(partition_by) }}, false)
        union all
        {%- endif %}
        select {{ columns }}
        from {{ source_relation }}
    {%- endset -%}
    {%- do run_query(new_rows) -%}
    {%- if partition_column is none or everything -%}
        {#- The whole table: static mode replaces every partition, and one
            that became empty is gone. -#}
        {%- do spark_partition_overwrite_mode('static') -%}
        insert overwrite table {{ target_relation }}
        select {{ columns }} from {{ scratch }}
    {%- else -%}
        {#- Only the rebuilt partitions. A partition the build rewrote that
            has no row now (a first play moved to a late day) is dropped:
            dynamic mode replaces only the partitions that get rows. -#}
        {%- set emptied -%}
            select distinct built.{{ partition_column }}
            from {{ target_relation }} as built
            where
                coalesce({{ touched('built.' ~ partition_column) }}, false)
                and not exists (
                    select 1 from {{ scratch }} as rebuilt
                    where
                        rebuilt.{{ partition_column }}
                        <=> built.{{ partition_column }}
                )
        {%- endset -%}
        {%- for day in run_query(emptied).columns[0].values() -%}
            {%- do run_query(
                'alter table ' ~ target_relation ~ ' drop if exists partition ('
                ~ partition_column ~ ' = '
                ~ ('null' if day is none else "'" ~ day ~ "'") ~ ')'
            ) -%}
        {%- endfor -%}
        {%- do spark_partition_overwrite_mode('dynamic') -%}
        insert overwrite table {{ target_relation }}
        partition ({{ partition_column }})
        select {{ columns }} from {{ scratch }}
    {%- endif -%}
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
