{#- The incremental contract between the loader and dbt, in one place: the
    policies, which loads a build may claim, which partitions they touch,
    and how a row is known to be in one. The design, how a model names its
    policy, and how each engine runs it: docs/warehouse.md, "Incremental
    builds". -#}

-- The macros below render nothing here; sqlfluff would judge the layout of
-- their Jinja as if it were SQL.
-- noqa: disable=LT02

{#- The policies: which partitions a model rewrites, named by the column(s)
    of its touched set, which kinds of load can change them, and which
    other policies' touched sets its models read (`reads`: a users model
    reads the new events). A load
    that replaced files (a correction: rows can vanish) of one of those
    kinds makes the model rewrite everything. event_days_onward touches the
    same days as event_days, and rewrites every day from the earliest of
    them on: for a row that depends on earlier days too (a listener's first
    play of a song), which a late day can move. -#}
{% macro incremental_policies() -%}
    {{ return({
        'files': {'columns': ['source_file'], 'corrected_by': []},
        'events': {'columns': ['event_id'], 'corrected_by': ['events']},
        'users': {
            'columns': ['user_id'],
            'corrected_by': ['events'],
            'reads': ['events'],
        },
        'sessions': {
            'columns': ['user_id', 'session_id'],
            'corrected_by': ['events'],
        },
        'event_days': {
            'columns': ['event_date'],
            'corrected_by': ['events', 'songs'],
        },
        'event_days_onward': {
            'columns': ['event_date'],
            'corrected_by': ['events', 'songs'],
        },
    }) }}
{%- endmacro %}

{#- The policy this model names (meta.incremental_policy), or none. -#}
{% macro incremental_policy() -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set policy = meta.get('incremental_policy') -%}
    {%- if policy is not none and policy not in incremental_policies() -%}
        {%- do exceptions.raise_compiler_error(
            "incremental_policy '" ~ policy ~ "' of " ~ this.identifier
            ~ " is not one of " ~ (incremental_policies().keys() | list)
        ) -%}
    {%- endif -%}
    {{ return(policy) }}
{%- endmacro %}

{#- audit.consumed_loads: per model, the loads whose rows it holds. -#}
{% macro consumed_loads_relation() -%}
    {{ return(api.Relation.create(
        database=target.database if target.database is defined else none,
        schema=generate_schema_name('audit', none),
        identifier='consumed_loads',
    )) }}
{%- endmacro %}

{#- on-run-start: creates audit.consumed_loads unless it exists. -#}
{% macro create_consumed_loads() -%}
    {{ return(adapter.dispatch('create_consumed_loads', 'sparkify')()) }}
{%- endmacro %}

{% macro default__create_consumed_loads() -%}
    {%- set relation = consumed_loads_relation() -%}
    {{ create_schema_if_missing(relation.schema) }};
    create table if not exists {{ relation }} (
        model_name {{ text_type() }} not null,
        load_id bigint not null,
        invocation_id {{ text_type() }} not null,
        consumed_at timestamp not null default current_timestamp,
        primary key (model_name, load_id)
    )
{%- endmacro %}

{#- True while a rewrite model's build rewrites the partitions its loads
    touch; false on a full build (no table yet, or --full-refresh), which
    builds the model whole. dbt's is_incremental() is for materialized=
    'incremental' only. -#}
{% macro is_incremental_rewrite() -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set relation = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier
    ) -%}
    {{ return(
        relation is not none
        and relation.type == 'table'
        and model.config.materialized == 'rewrite'
        and not should_full_refresh()
    ) }}
{%- endmacro %}

{#- The model's column (or columns) that says which partition of its
    policy a row is in, for the write's delete: meta.rewrite_partition, or
    else the policy's own columns (source_file, event_id, user_id,
    session_id). A day has no column of its own name in every model (a
    play's start_time, a rollup's date_day): an event_days model must name
    it. -#}
{% macro rewrite_partition() -%}
    {%- set meta = config.get('meta') or {} -%}
    {%- set policy = incremental_policy() -%}
    {%- if meta.get('rewrite_partition') -%}
        {{ return(meta.get('rewrite_partition')) }}
    {%- endif -%}
    {%- if policy in ('event_days', 'event_days_onward') -%}
        {%- do exceptions.raise_compiler_error(
            this.identifier ~ " (incremental_policy " ~ policy ~ ") names no"
            ~ " meta.rewrite_partition: set it to the model's column that"
            ~ " holds each row's day (a date or a timestamp)"
        ) -%}
    {%- endif -%}
    {{ return(incremental_policies()[policy].columns | join(', ')) }}
{%- endmacro %}

{#- Step 1 of the materialization on PostgreSQL, in the model's own
    transaction: records the claim at once (the transaction commits it with
    the rows, or neither), and puts the touched partitions in temporary
    tables. A full build forgets what the model consumed before. -#}
{% macro postgres_claim_sql(full_build) -%}
    {%- set consumed = consumed_loads_relation() -%}
    {%- set name = this.identifier -%}
    {%- if full_build %}
    delete from {{ consumed }} where model_name = '{{ name }}';
    {%- endif %}
    insert into {{ consumed }} (model_name, load_id, invocation_id)
    select '{{ name }}', claimable.load_id, '{{ invocation_id }}'
    from ({{ claimable_loads(forget_consumed=false) }}) as claimable;
    {%- if not full_build %}
    {{ cheap_index_probes() }}
    {%- for touched_policy in materialized_touched_policies() %}
    {{ create_touched_partitions(touched_set(touched_policy), touched_policy) }};
    {%- endfor %}
    {%- endif -%}
{%- endmacro %}

{#- An incremental build reads a small part of large tables by index: a
    day's events among months of them. PostgreSQL's default
    random_page_cost (4) prices each index probe as a disk seek, and then
    scans whole tables instead; on SSDs and a warm cache a probe costs about
    as much as a sequential read (1.1, the PostgreSQL manual's figure for
    solid-state storage). Only lowered, and only for this transaction: a
    server tuned lower keeps its own value. -#}
{% macro cheap_index_probes() -%}
    {{ return(adapter.dispatch('cheap_index_probes', 'sparkify')()) }}
{%- endmacro %}

{% macro default__cheap_index_probes() -%}
{%- endmacro %}

{% macro postgres__cheap_index_probes() -%}
    select set_config(
        'random_page_cost',
        least(current_setting('random_page_cost')::float8, 1.1)::text,
        true
    );
{%- endmacro %}

{#- The touched sets a build materializes before the model's SQL runs: its
    own policy's, and on PostgreSQL those of the policies it reads too (an
    analyzed temporary table tells the planner how few rows they hold,
    where an inlined touched set looks as big as a correction could make
    it). -#}
{% macro materialized_touched_policies() -%}
    {{ return(adapter.dispatch(
        'materialized_touched_policies', 'sparkify'
    )()) }}
{%- endmacro %}

{% macro default__materialized_touched_policies() -%}
    {{ return([incremental_policy()]) }}
{%- endmacro %}

{% macro postgres__materialized_touched_policies() -%}
    {%- set policy = incremental_policy() -%}
    {{ return([policy] + incremental_policies()[policy].get('reads', [])) }}
{%- endmacro %}

{#- The loads this model may claim now: those all its tracked parents have
    consumed and it has not (with forget_consumed, a full build that cannot
    delete its record first: whatever it consumed before). One select of
    load_id, on every engine. -#}
{% macro claimable_loads(forget_consumed) -%}
    select loads.load_id
    from {{ raw_relation('loads') }} as loads
    where
        {%- for parent in tracked_parents(model) %}
        loads.load_id in (
            select load_id from {{ consumed_loads_relation() }}
            where model_name = '{{ parent }}'
        ) and
        {%- endfor %}
        {%- if forget_consumed %}
        true
        {%- else %}
        not exists (
            select 1
            from {{ consumed_loads_relation() }} as mine
            where
                mine.model_name = '{{ this.identifier }}'
                and mine.load_id = loads.load_id
        )
        {%- endif %}
{%- endmacro %}

{#- The nearest rewrite models upstream of `node`, seen through views
    and ephemeral models: the loads a model may consume are the loads all
    of them have consumed. Sources and seeds add no condition. A table
    (rebuilt in full, recording nothing) cannot stand between two
    rewrite models: it may not have been rebuilt since its parents
    consumed a load. -#}
{% macro tracked_parents(node) -%}
    {%- set parents = [] -%}
    {%- for parent_id in node.depends_on.nodes -%}
        {%- set parent = graph.nodes.get(parent_id) -%}
        {%- if parent is none or parent.resource_type != 'model' -%}
            {#- a source or a seed -#}
        {%- elif parent.config.materialized == 'rewrite' -%}
            {%- do parents.append(parent.name) -%}
        {%- elif parent.config.materialized in ('view', 'ephemeral') -%}
            {%- do parents.extend(tracked_parents(parent)) -%}
        {%- else -%}
            {%- do exceptions.raise_compiler_error(
                "rewrite model " ~ node.name ~ " reads " ~ parent.name
                ~ ", a " ~ parent.config.materialized ~ ", which records no"
                ~ " loads: read its incremental parents instead"
            ) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(parents | unique | list) }}
{%- endmacro %}

{#- The loads this build of the model claimed. -#}
{% macro claimed_loads() -%}
    {{ return(adapter.dispatch('claimed_loads', 'sparkify')()) }}
{%- endmacro %}

{% macro default__claimed_loads() -%}
    (
        select claimed.load_id
        from {{ consumed_loads_relation() }} as claimed
        where
            claimed.model_name = '{{ this.identifier }}'
            and claimed.invocation_id = '{{ invocation_id }}'
    )
{%- endmacro %}

{#- The claim as literals, when the materialization has put it in the
    model (on Spark, model['rewrite_claim']: `files`, the claimed loads'
    files by kind, or none for too many; `corrected_kinds`, the kinds they
    corrected; `days`, a model by day's touched days, or none); else none. -#}
{% macro literal_claim() -%}
    {{ return(model.get('rewrite_claim')) }}
{%- endmacro %}

{#- Whether a claimed load of one of `kinds` may have replaced files:
    false when none of `kinds` is given, or the claim is literal and no
    load of those kinds corrected anything. -#}
{% macro may_be_corrected(kinds) -%}
    {%- set claim = literal_claim() -%}
    {{ return(kinds | length > 0 and (
        claim is none
        or claim.corrected_kinds | select('in', kinds) | list | length > 0
    )) }}
{%- endmacro %}

{#- True (SQL) when a claimed load of one of `kinds` replaced files. -#}
{% macro claimed_corrections(kinds) -%}
    {%- if not may_be_corrected(kinds) -%}
        (1 = 0)
    {%- elif literal_claim() is not none -%}
        (1 = 1)
    {%- else -%}
        exists (
            select 1
            from {{ raw_relation('loads') }} as corrections
            where
                corrections.load_id in {{ claimed_loads() }}
                and corrections.source_kind in ('{{ kinds | join("', '") }}')
                and corrections.replaced_file_count > 0
        )
    {%- endif -%}
{%- endmacro %}

{#- The literal claim's files of `kind`, each a quoted SQL string. -#}
{% macro claimed_file_literals(kind) -%}
    {%- set names = [] -%}
    {%- for name in literal_claim().files.get(kind, []) -%}
        {%- do names.append("'" ~ name | replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#- The files of `kind` whose current version a claimed load landed: a
    list of literals (null alone for none) when the claim is literal. -#}
{% macro claimed_files(kind) -%}
    {%- set claim = literal_claim() -%}
    {%- if claim is not none and claim.files is not none -%}
        ({{ claimed_file_literals(kind) | join(', ') or 'null' }})
    {%- else -%}
    (
        select landed_files.source_file
        from {{ raw_relation('load_manifest') }} as landed_files
        where
            landed_files.source_kind = '{{ kind }}'
            and landed_files.load_id in {{ claimed_loads() }}
    )
    {%- endif -%}
{%- endmacro %}

{#- The partitions of `policy` that this build's claimed loads touch, as a
    select of the policy's columns: the partitions of the lines they landed,
    or every partition after a correction. Event days: the days of the
    lines, and of the plays that songs they landed may match (same title and
    artist keys: a superset of the matches); a line with no valid ts falls
    on the day null_partition_day(). With a literal claim, the branches
    that cannot match (no song file claimed, no correction) are left out. -#}
{% macro touched_set(policy) -%}
    {%- set spec = incremental_policies()[policy] -%}
    {%- set lines = model_relation('stg_sparkify__events') -%}
    {%- set claim = literal_claim() -%}
    {%- set files_known = claim is not none and claim.files is not none -%}
    {%- if policy == 'files' -%}
        select landed_files.source_file
        from {{ raw_relation('load_manifest') }} as landed_files
        where
            landed_files.source_kind = 'events'
            and landed_files.source_file in {{ claimed_files('events') }}
        {%- if may_be_corrected(['events']) %}
        union
        -- files whose rows left raw with no new version (pruned), looked
        -- for only when a claimed load corrected files
        select distinct built.source_file
        from {{ this }} as built
        where
            {{ claimed_corrections(['events']) }}
            and built.source_file not in (
                select source_file from {{ raw_relation('load_manifest') }}
            )
        {%- endif %}
    {%- else -%}
        {%- set partition -%}
            {%- if policy in ('event_days', 'event_days_onward') -%}
                coalesce(
                    cast(lines.event_at as date), {{ null_partition_day() }}
                ) as event_date
            {%- else -%}
                {%- for column in spec.columns -%}
                    lines.{{ column }}{{ ', ' if not loop.last }}
                {%- endfor -%}
            {%- endif -%}
        {%- endset -%}
        {%- set present -%}
            {%- for column in spec.columns if column != 'event_date' -%}
                and lines.{{ column }} is not null
            {% endfor -%}
        {%- endset -%}
        select {{ partition }}
        from {{ lines }} as lines
        where lines.source_file in {{ claimed_files('events') }} {{ present }}
        {%- if policy in ('event_days', 'event_days_onward')
            and not (files_known and not claim.files.get('songs')) %}
        union
        -- The songs view dedupes the whole catalogue: it is read only when
        -- song files were claimed (a one-time filter).
        select cast(plays.event_at as date) as event_date
        from {{ model_relation('int_events_deduplicated') }} as plays
        inner join {{ model_relation('stg_sparkify__songs') }} as songs
            on
                plays.song_match_key = songs.title_match_key
                and plays.artist_match_key = songs.artist_match_key
        where
            {%- if not files_known %}
            exists (select 1 from {{ claimed_files('songs') }} as song_files)
            and
            {%- endif %}
            songs.source_file in {{ claimed_files('songs') }}
            and plays.is_song_play
            and plays.has_valid_ts
        {%- endif %}
        {%- if may_be_corrected(spec.corrected_by) %}
        union
        select {{ partition }}
        from {{ lines }} as lines
        where {{ claimed_corrections(spec.corrected_by) }} {{ present }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- The day a line with no valid timestamp counts on, in the event_days
    touched set (a key cannot match null). -#}
{% macro null_partition_day() -%}
    cast('{{ null_partition_day_literal() }}' as date)
{%- endmacro %}

{#- null_partition_day() as the ISO string a query returns for it. -#}
{% macro null_partition_day_literal() -%}
    {{ return('0001-01-01') }}
{%- endmacro %}

{#- The temporary table of this build's touched partitions (of `policy`,
    when it is another policy than the model's). -#}
{% macro touched_partitions_relation(policy=none) -%}
    {%- if policy is none or policy == incremental_policy() -%}
        {{ return(this.identifier ~ '__touched') }}
    {%- endif -%}
    {{ return(this.identifier ~ '__touched_' ~ policy) }}
{%- endmacro %}

{% macro create_touched_partitions(select_sql, policy=none) -%}
    {{ return(adapter.dispatch('create_touched_partitions', 'sparkify')(
        select_sql, policy
    )) }}
{%- endmacro %}

{#- Dropped at commit; ANALYZE tells the planner how few rows it holds, so
    it reads the touched partitions by index. -#}
{% macro postgres__create_touched_partitions(select_sql, policy=none) -%}
    create temporary table {{ touched_partitions_relation(policy) }}
    on commit drop as
    {{ select_sql }};
    analyze {{ touched_partitions_relation(policy) }}
{%- endmacro %}

{% macro default__create_touched_partitions(select_sql, policy=none) -%}
    create temporary view {{ touched_partitions_relation(policy) }} as
    {{ select_sql }}
{%- endmacro %}

{#- touched() with no subquery, once the materialization has put the
    claim in the model (Spark): the model's own touched days as date
    ranges (the claim's days), or its claimed files; else none. A filter
    on literals is one Iceberg prunes files by, and the only kind a
    MERGE's condition may hold. -#}
{% macro literal_touched(expression, policy=none) -%}
    {%- set claim = literal_claim() -%}
    {%- set own_policy = incremental_policy() -%}
    {%- if claim is none or (policy or own_policy) != own_policy -%}
        {{ return(none) }}
    {%- elif claim.days is not none -%}
        {%- set no_day = null_partition_day_literal() -%}
        {%- set real = claim.days | reject('equalto', no_day) | sort | list -%}
        {%- if own_policy == 'event_days_onward' -%}
            {{ return('(' ~ expression ~ " >= date'" ~ real[0] ~ "')"
                if real else '(1 = 0)') }}
        {%- endif -%}
        {%- set conditions = [] -%}
        {%- for day in real -%}
            {%- set next = (modules.datetime.date.fromisoformat(day)
                + modules.datetime.timedelta(days=1)).isoformat() -%}
            {%- do conditions.append(
                '(' ~ expression ~ " >= date'" ~ day ~ "' and "
                ~ expression ~ " < date'" ~ next ~ "')"
            ) -%}
        {%- endfor -%}
        {%- if no_day in claim.days -%}
            {%- do conditions.append(expression ~ ' is null') -%}
        {%- endif -%}
        {{ return('(' ~ (conditions | join(' or ') or '1 = 0') ~ ')') }}
    {%- elif own_policy == 'files' and claim.files is not none
        and not may_be_corrected(['events']) -%}
        {{ return(
            '((' ~ expression ~ ') in ' ~ claimed_files('events') ~ ')'
        ) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- In a model's SQL: true (SQL) for a row of a partition this build
    rewrites. `expression` gives the row's partition: a column (or a tuple
    of columns, for sessions); for event_days, a date or timestamp. With
    `policy`, the partitions another policy would touch (e.g. the new
    events of a model partitioned by user). True on a full build, which
    builds every partition: a model needs no is_incremental() around it. -#}
{% macro touched(expression, policy=none) -%}
    {%- if not is_incremental_rewrite() -%}
        {#- A full build: every partition. -#}
        {{ return('(1 = 1)') }}
    {%- endif -%}
    {%- set policy = policy or incremental_policy() -%}
    {%- set literal = literal_touched(expression, policy) -%}
    {%- if literal is not none -%}
        {{ return(literal) }}
    {%- endif -%}
    {%- set columns = incremental_policies()[policy].columns -%}
    {%- if policy in materialized_touched_policies() -%}
        {%- set partitions -%}
            select {{ columns | join(', ') }}
            from {{ touched_partitions_relation(policy) }}
        {%- endset -%}
    {%- else -%}
        {%- set partitions = touched_set(policy) -%}
    {%- endif -%}
    {%- if policy == 'event_days_onward' -%}
        {#- Null (no real day touched) selects nothing. -#}
        (
            {{ expression }} >= (
                select min(touched_days.event_date)
                from ({{ partitions }}) as touched_days (event_date)
                where touched_days.event_date > {{ null_partition_day() }}
            )
        )
    {%- elif policy == 'event_days' -%}
        {#- The range lets an index on the column find the days; the null
            branch keeps the rows of null_partition_day. -#}
        {%- set days -%}
            ({{ partitions }}) as touched_days (event_date)
        {%- endset -%}
        (
            coalesce(
                cast({{ expression }} as date), {{ null_partition_day() }}
            ) in (select touched_days.event_date from {{ days }})
            and (
                {{ expression }} is null
                or (
                    {{ expression }} >= (
                        select min(touched_days.event_date)
                        from {{ days }}
                        where touched_days.event_date > {{ null_partition_day() }}
                    )
                    and {{ expression }} < (
                        select {{ next_day('max(touched_days.event_date)') }}
                        from {{ days }}
                    )
                )
            )
        )
    {%- else -%}
        ({{ expression }}) in ({{ partitions }})
    {%- endif -%}
{%- endmacro %}

{#- A relation by model name, from the graph: for the touched sets, which
    are rendered while a model runs, where ref() would count as a new
    dependency. -#}
{% macro model_relation(name) -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.name == name -%}
        {{ return(api.Relation.create(
            database=node.database,
            schema=node.schema,
            identifier=node.alias,
        )) }}
    {%- endfor -%}
    {%- do exceptions.raise_compiler_error('no model ' ~ name) -%}
{%- endmacro %}

{% macro raw_relation(name) -%}
    {%- for node in graph.sources.values()
        if node.source_name == 'sparkify' and node.name == name -%}
        {{ return(api.Relation.create(
            database=node.database,
            schema=node.schema,
            identifier=node.identifier,
        )) }}
    {%- endfor -%}
    {%- do exceptions.raise_compiler_error('no source sparkify.' ~ name) -%}
{%- endmacro %}

{#- On PostgreSQL, the materialization's last step before commit: gives a
    table the planner's statistics it lacks. A table dbt has just created
    has none until autovacuum gets to it, and then PostgreSQL guesses a
    third of the table for every filter. A table that has them keeps them:
    autovacuum refreshes them as the table grows, and re-sampling a large
    table after every day cost more than the day's insert into a small one. -#}
{% macro postgres_analyze_if_new(relation) -%}
    {%- call statement('analyze_if_new') -%}
    do $$
    begin
        if not exists (
            select 1 from pg_catalog.pg_stats
            where
                schemaname = '{{ relation.schema }}'
                and tablename = '{{ relation.identifier }}'
        ) then
            analyze {{ relation }};
        end if;
    end
    $$
    {%- endcall -%}
{%- endmacro %}

{#- CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
    schema exists, and the transformer role owns its schemas only
    (src/sparkify/roles.py). -#}
{% macro create_schema_if_missing(schema) -%}
    {{ return(adapter.dispatch('create_schema_if_missing', 'sparkify')(
        schema
    )) }}
{%- endmacro %}

{% macro default__create_schema_if_missing(schema) -%}
    create schema if not exists {{ schema }}
{%- endmacro %}

{% macro postgres__create_schema_if_missing(schema) -%}
    do $$
    begin
        if to_regnamespace('{{ schema }}') is null then
            create schema {{ schema }};
        end if;
    end
    $$
{%- endmacro %}
