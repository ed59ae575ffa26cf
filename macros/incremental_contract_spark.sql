{#- The incremental contract (macros/incremental_contract.sql) on Spark: the
    steps the materialization `rewrite` calls there
    (macros/materializations/rewrite.sql); why they are safe without a
    transaction: docs/warehouse.md, "On PostgreSQL and on Spark". Every
    table is an Iceberg table: a delete, an insert, a create or replace is
    one atomic commit, and a delete removes rows, not files (docs/spark.md,
    The lakehouse). -#}

-- The macros below render nothing here; sqlfluff would judge the layout of
-- their Jinja as if it were SQL.
-- noqa: disable=LT02

{#- Partitioned by model: a full build's delete of its model's rows drops
    whole files. -#}
{% macro spark__create_consumed_loads() -%}
    {%- set relation = consumed_loads_relation() -%}
    {%- if execute -%}
        {%- do run_query(
            'create schema if not exists ' ~ relation.schema
        ) -%}
    {%- endif -%}
    create table if not exists {{ relation }} (
        model_name string,
        load_id bigint,
        invocation_id string,
        consumed_at timestamp
    )
    using iceberg
    partitioned by (model_name)
{%- endmacro %}

{% macro claimed_loads_view() -%}
    {{ return(this.identifier ~ '__claimed') }}
{%- endmacro %}

{% macro spark__claimed_loads() -%}
    (
        select claimed.load_id
        from {{ claimed_loads_view() }} as claimed
    )
{%- endmacro %}

{#- The temporary view of the new rows a build writes (cached). -#}
{% macro rewrite_rows_relation() -%}
    {{ return(this.incorporate(
        path={'identifier': this.identifier ~ '__rewrite'}
    ).include(database=false, schema=false)) }}
{%- endmacro %}

{#- Step 1 on Spark: works out the claim without recording it. One query
    finds the loads, with what the touched sets need to know of them: the
    kinds they corrected and, on an incremental build, the files they
    landed. A temporary view names the loads for the SQL that reads the
    claim. The claim is put in the model (model['rewrite_claim']) as
    literals, which claimed_files(), claimed_corrections() and
    literal_touched() render: a filter on literal files or days lets
    Iceberg skip the files of other partitions, and a branch of the touched
    set that cannot match is left out. A model by day reads its touched
    days now, once; a touched set with no literal form is cached (computed
    now, once: the model's SQL and the write read it, and the write changes
    what it reads). Returns {load_ids, everything}:
    everything when a claimed load corrected files of a kind the model's
    policy reads. -#}
{% macro spark_claim(full_build) -%}
    {%- set policy = incremental_policy() -%}
    {%- set spec = incremental_policies()[policy] -%}
    {%- set found -%}
        select
            loads.load_id,
            loads.source_kind,
            loads.replaced_file_count
            {%- if not full_build %},
            landed_files.source_kind,
            landed_files.source_file
            {%- endif %}
        from {{ raw_relation('loads') }} as loads
        {%- if not full_build %}
        left join {{ raw_relation('load_manifest') }} as landed_files
            on loads.load_id = landed_files.load_id
        {%- endif %}
        where loads.load_id in (
            {{ claimable_loads(forget_consumed=full_build) }}
        )
    {%- endset -%}
    {%- set found = run_query(found) -%}
    {%- set load_ids = [] -%}
    {%- set corrected_kinds = [] -%}
    {%- set files = {} -%}
    {%- for row in found.rows -%}
        {%- do load_ids.append(row[0] | int) -%}
        {%- if (row[2] or 0) > 0 -%}
            {%- do corrected_kinds.append(row[1]) -%}
        {%- endif -%}
        {%- if not full_build and row[4] is not none -%}
            {%- do files.setdefault(row[3], []).append(row[4]) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set load_ids = load_ids | unique | list -%}
    {%- set corrected_kinds = corrected_kinds | unique | list -%}
    {%- set everything = corrected_kinds
        | select('in', spec.corrected_by) | list | length > 0 -%}
    {%- set values = [] -%}
    {%- for load_id in load_ids -%}
        {%- do values.append('(' ~ load_id ~ ')') -%}
    {%- endfor -%}
    {%- do run_query(
        'create or replace temporary view ' ~ claimed_loads_view() ~ ' as '
        ~ (
            'select * from values ' ~ values | join(', ') ~ ' as claimed (load_id)'
            if load_ids else
            'select cast(null as bigint) as load_id where false'
        )
    ) -%}
    {%- if load_ids and not full_build -%}
        {#- A backfill's thousands of files (a row per file) stay a
            subquery. -#}
        {%- set claim = {
            'files': files if found.rows | length <= 1000 else none,
            'corrected_kinds': corrected_kinds,
            'days': none,
        } -%}
        {%- do model.update({'rewrite_claim': claim}) -%}
        {%- if policy in ('event_days', 'event_days_onward')
            and not everything -%}
            {%- do claim.update({'days': run_query(
                'select distinct cast(event_date as string) from ('
                ~ touched_set(policy) ~ ') as touched'
            ).columns[0].values() | list}) -%}
        {%- elif literal_touched(rewrite_partition()) is none -%}
            {%- do run_query(
                'cache table ' ~ touched_partitions_relation()
                ~ ' as ' ~ touched_set(policy)
            ) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return({'load_ids': load_ids, 'everything': everything}) }}
{%- endmacro %}

{#- Step 4 on Spark, after the rows are written: the claim recorded. A full
    build first forgets what the model consumed before. -#}
{% macro spark_record_claim(full_build, load_ids) -%}
    {%- set consumed = consumed_loads_relation() -%}
    {%- if full_build -%}
        {%- do run_query(
            'delete from ' ~ consumed
            ~ " where model_name = '" ~ this.identifier ~ "'"
        ) -%}
    {%- endif -%}
    {%- if load_ids -%}
        {%- do run_query(
            'insert into ' ~ consumed
            ~ " select '" ~ this.identifier ~ "', claimed.load_id, '"
            ~ invocation_id ~ "', current_timestamp()"
            ~ ' from ' ~ claimed_loads_view() ~ ' as claimed'
        ) -%}
    {%- endif -%}
{%- endmacro %}

{#- Step 3 on Spark: one MERGE, so one Iceberg commit, that deletes the
    rows of the touched partitions (every row after a correction) and
    inserts the rebuilt rows. Its source is the rebuilt rows plus one marker
    row per touched partition; a built row matches the marker of its
    partition (and nothing else), and is deleted; a rebuilt row matches
    nothing, and is inserted. Readers see the table before or after, never
    between; and a build that committed a change to the table after this one
    read it makes this commit fail (Iceberg's serializable isolation)
    rather than write its rows twice. -#}
{% macro spark_rewrite_merge(target, new_rows, columns, everything) -%}
    {%- set policy = incremental_policy() -%}
    {%- set names = columns | map(attribute='quoted') | list -%}
    {%- set keys = rewrite_partition().split(',') | map('trim') | list -%}
    {%- set touched_days = spark_touched_partitions() -%}
    {%- if everything -%}
        {%- set keys = [] -%}
        {%- set markers = 'select 1 as everything' -%}
        {%- set matches = [] -%}
    {%- elif policy == 'event_days' -%}
        {%- set markers = 'select event_date from ' ~ touched_days -%}
        {%- set matches = [
            'coalesce(cast(built.' ~ keys[0] ~ ' as date), '
            ~ null_partition_day() ~ ') = rebuilt.rewrite_key_0'
        ] -%}
    {%- elif policy == 'event_days_onward' -%}
        {#- Every day from the earliest touched one: null (no real day
            touched) matches nothing. -#}
        {%- set markers = 'select min(event_date) from ' ~ touched_days
            ~ ' where event_date > ' ~ null_partition_day() -%}
        {%- set matches = ['built.' ~ keys[0] ~ ' >= rebuilt.rewrite_key_0'] -%}
    {%- else -%}
        {%- set spec_columns = incremental_policies()[policy].columns -%}
        {%- set markers = 'select ' ~ spec_columns | join(', ')
            ~ ' from ' ~ touched_days -%}
        {%- set matches = [] -%}
        {%- for key in keys -%}
            {%- do matches.append(
                'built.' ~ key ~ ' = rebuilt.rewrite_key_' ~ loop.index0
            ) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set key_count = matches | length if not everything else 1 -%}
    {#- The touched days or files also on the target alone, as literals
        (literal_touched(), for a model by day or by file): Spark hands
        that condition to Iceberg's scan, so that the merge reads and
        rewrites those partitions' files only, instead of finding them by
        joining every file's rows with the markers. -#}
    {%- set target_files = none -%}
    {%- if not everything and keys | length == 1 -%}
        {%- set target_files = literal_touched('built.' ~ keys[0]) -%}
    {%- endif -%}
    merge into {{ target }} as built
    using (
        select
            {% for name in names %}{{ name }}, {% endfor %}
            {%- for index in range(key_count) %}
            null as rewrite_key_{{ index }},
            {%- endfor %}
            true as rewrite_is_new
        from {{ new_rows }}
        union all
        select
            {% for name in names %}null, {% endfor %}
            markers.*,
            false
        from ({{ markers }}) as markers
    ) as rebuilt
    on
        not rebuilt.rewrite_is_new
        {%- for match in matches %}
        and {{ match }}
        {%- endfor %}
        {%- if target_files is not none %}
        and {{ target_files }}
        {%- endif %}
    when matched then delete
    when not matched and rebuilt.rewrite_is_new then
        insert ({{ names | join(', ') }})
        values (
            {%- for name in names -%}
                rebuilt.{{ name }}{{ ', ' if not loop.last }}
            {%- endfor -%}
        )
{%- endmacro %}

{#- The touched partitions of the model's own policy, for a FROM clause:
    the claim's days or files as a table of literals, or else the cached
    touched set. -#}
{% macro spark_touched_partitions() -%}
    {%- set claim = literal_claim() -%}
    {%- set literals = none -%}
    {%- if claim.days is not none -%}
        {%- set column = 'event_date' -%}
        {%- set literals = [] -%}
        {%- for day in claim.days -%}
            {%- do literals.append("(date'" ~ day ~ "')") -%}
        {%- endfor -%}
    {%- elif literal_touched(rewrite_partition()) is not none -%}
        {%- set column = 'source_file' -%}
        {%- set literals = [] -%}
        {%- for name in claimed_file_literals('events') -%}
            {%- do literals.append('(' ~ name ~ ')') -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if literals is none -%}
        {{ return(touched_partitions_relation()) }}
    {%- elif not literals -%}
        {{ return('(select cast(null as ' ~ ('date' if column == 'event_date'
            else 'string') ~ ') as ' ~ column ~ ' where false) as touched') }}
    {%- endif -%}
    {{ return('(select * from values ' ~ literals | join(', ')
        ~ ' as literals (' ~ column ~ ')) as touched') }}
{%- endmacro %}

{#- dbt-spark's `partitioned by` clause (dispatched): the model's own
    partition_by, or else the partition of a rewrite model by day
    (incremental_policy event_days, event_days_onward: Iceberg's days()
    transform of the model's day column, a date or a timestamp) or by file
    (files: source_file; a feed has a file a day), so that a build's write
    of its touched partitions reads and rewrites their files only. -#}
{% macro spark__partition_cols(label, required=false) -%}
    {%- set columns = config.get('partition_by') -%}
    {%- set policy = incremental_policy()
        if model.config.materialized == 'rewrite' else none -%}
    {%- if columns is none
        and policy in ('event_days', 'event_days_onward') -%}
        {%- set columns = 'days(' ~ rewrite_partition() ~ ')' -%}
    {%- elif columns is none and policy == 'files' -%}
        {%- set columns = rewrite_partition() -%}
    {%- endif -%}
    {%- if columns is string -%}
        {%- set columns = [columns] -%}
    {%- endif -%}
    {%- if columns -%}
        {{ label }} ({{ columns | join(', ') }})
    {%- endif -%}
{%- endmacro %}
