{#- materialized='rewrite': the order of an incremental build (1. claim,
    2. build, 3. write, 4. record), once per engine; the rules are in
    macros/incremental_contract.sql. Why, and how the two engines differ:
    docs/warehouse.md, "Incremental builds" ("On PostgreSQL and on
    Spark"). -#}

-- The macros below render nothing here; sqlfluff would judge the layout of
-- their Jinja as if it were SQL.
-- noqa: disable=LT02

{#- The columns the write names: the table's, after the model's
    on_schema_change (default fail) has met the rebuilt rows' columns. -#}
{% macro rewrite_columns(new_rows, existing) -%}
    {%- set on_schema_change = incremental_validate_on_schema_change(
        config.get('on_schema_change'), default='fail'
    ) -%}
    {{ return(process_schema_changes(on_schema_change, new_rows, existing)
        or adapter.get_columns_in_relation(existing)) }}
{%- endmacro %}

{% materialization rewrite, adapter='postgres' -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {%- set full_build = not is_incremental_rewrite() -%}
    {%- set intermediate = make_intermediate_relation(target) -%}
    {%- set backup = make_backup_relation(
        target, 'table' if existing is none else existing.type
    ) -%}
    {%- set new_rows = make_temp_relation(target) -%}
    {{ drop_relation_if_exists(load_cached_relation(intermediate)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup)) }}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {#- BEGIN -#}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {#- 1. claim, recorded at once: the transaction holds it with the rows -#}
    {%- call statement('claim') -%}
        {{ postgres_claim_sql(full_build) }}
    {%- endcall -%}

    {#- 2. build, 3. write -#}
    {%- if existing is none -%}
        {%- call statement('main') -%}
            {{ get_create_table_as_sql(False, target, sql) }}
        {%- endcall -%}
        {%- do create_indexes(target) -%}
    {%- elif full_build -%}
        {%- call statement('main') -%}
            {{ get_create_table_as_sql(False, intermediate, sql) }}
        {%- endcall -%}
        {%- do create_indexes(intermediate) -%}
        {%- do adapter.rename_relation(existing, backup) -%}
        {%- do adapter.rename_relation(intermediate, target) -%}
    {%- else -%}
        {%- do run_query(get_create_table_as_sql(True, new_rows, sql)) -%}
        {%- set columns = rewrite_columns(new_rows, existing) -%}
        {%- set column_list = get_quoted_csv(
            columns | map(attribute='name')
        ) -%}
        {%- set spec = incremental_policies()[incremental_policy()] -%}
        {%- set everything = run_query(
            'select ' ~ claimed_corrections(spec.corrected_by)
        ).columns[0].values()[0] -%}
        {%- call statement('main') -%}
            delete from {{ target }}
            {%- if not everything %}
            where {{ touched(rewrite_partition()) }}
            {%- endif %};
            insert into {{ target }} ({{ column_list }})
            select {{ column_list }} from {{ new_rows }}
        {%- endcall -%}
    {%- endif -%}
    {{ postgres_analyze_if_new(target) }}

    {%- do apply_grants(
        target, config.get('grants'), should_revoke(existing, full_build)
    ) -%}
    {%- do persist_docs(target, model) -%}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {#- 4. record: the claim commits with the rows -#}
    {%- do adapter.commit() -%}
    {%- if full_build and existing is not none -%}
        {%- do adapter.drop_relation(backup) -%}
    {%- endif -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target]}) }}
{%- endmaterialization %}

{% materialization rewrite, adapter='spark' -%}
    {%- set existing = load_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {%- set full_build = not is_incremental_rewrite() -%}
    {%- if config.get('file_format') != 'iceberg' -%}
        {%- do exceptions.raise_compiler_error(
            "materialized='rewrite' on Spark writes Iceberg tables (row-level"
            ~ " delete, atomic commits): give " ~ this.identifier
            ~ " file_format='iceberg' (dbt_project.yml does for every model)"
        ) -%}
    {%- endif -%}
    {{ run_hooks(pre_hooks) }}

    {#- 1. claim: the loads, worked out, not yet recorded -#}
    {%- set claimed = spark_claim(full_build) -%}

    {%- if full_build -%}
        {#- 2, 3. one commit: the table replaced by the model's whole rows -#}
        {%- if existing is not none and not existing.is_iceberg -%}
            {%- do adapter.drop_relation(existing) -%}
        {%- endif -%}
        {%- call statement('main') -%}
            {{ create_table_as(False, target, compiled_code) }}
        {%- endcall -%}
        {%- do persist_docs(target, model) -%}
    {%- elif claimed.load_ids -%}
        {#- 2. build: the rows of the touched partitions, a view the merge
            reads once. A model that reads its own table ({{ this }}) has
            them computed now instead (cached): 3 changes that table. -#}
        {%- set new_rows = rewrite_rows_relation() -%}
        {#- Rendered again with the claim's literals (spark_claim). -#}
        {%- set rows_sql = render(model.raw_code) -%}
        {%- set reads_itself = modules.re.search(
            '[{][{]-?\\s*this\\b', model.raw_code) is not none -%}
        {%- do run_query(
            ('cache table ' if reads_itself
                else 'create or replace temporary view ')
            ~ new_rows ~ ' as ' ~ rows_sql
        ) -%}
        {%- set columns = rewrite_columns(new_rows, existing) -%}
        {#- 3. write: one commit, the touched partitions' rows replaced -#}
        {%- call statement('main') -%}
            {{ spark_rewrite_merge(target, new_rows, columns, claimed.everything) }}
        {%- endcall -%}
        {%- if reads_itself -%}
            {%- do run_query('uncache table if exists ' ~ new_rows) -%}
        {%- endif -%}
        {#- A touched set with no literal form was cached (spark_claim). -#}
        {%- if literal_touched(rewrite_partition()) is none -%}
            {%- do run_query(
                'uncache table if exists ' ~ touched_partitions_relation()
            ) -%}
        {%- endif -%}
    {%- else -%}
        {#- No load to consume: nothing changes. -#}
        {%- call statement('main') -%}
            select 'no new load' as status
        {%- endcall -%}
    {%- endif -%}

    {#- 4. record, once the rows are written -#}
    {%- do spark_record_claim(full_build, claimed.load_ids) -%}
    {%- do apply_grants(
        target, config.get('grants'), should_revoke(existing, full_build)
    ) -%}
    {{ run_hooks(post_hooks) }}
    {{ return({'relations': [target]}) }}
{%- endmaterialization %}
