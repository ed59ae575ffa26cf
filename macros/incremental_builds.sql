{#- Helpers that keep incremental builds equal to a full refresh at the
    cost of the new data only (see docs/warehouse.md, "Incremental builds"). -#}

{#- True (a SQL boolean) when the loader replaced a file of this kind after
    `watermark`: a replaced file can take rows away or change them, an
    appended file cannot. raw.load_manifest.first_loaded_at is older than
    loaded_at once a file was replaced (null in manifests written before the
    column existed: then the file counts as never replaced). -#}
{% macro files_replaced_since(watermark, source_kind='events') -%}
    exists (
        select 1
        from {{ source('sparkify', 'load_manifest') }} as loaded_files
        where
            loaded_files.source_kind = '{{ source_kind }}'
            and loaded_files.loaded_at > {{ watermark }}
            and loaded_files.first_loaded_at < loaded_files.loaded_at
    )
{%- endmacro %}

{#- A pre-hook for an incremental model whose new work is "rows landed after
    the watermark": when a file was replaced since, it empties the model, so
    the build that follows (its watermark now older than any load) computes
    every row again. Appends stay cheap; a correction costs a full build. -#}
{% macro rebuild_all_if_files_replaced(watermark_column) -%}
    {%- if not is_incremental() -%}
        select 1
    {%- else -%}
        delete from {{ this }}
        where {{ files_replaced_since(incremental_watermark(watermark_column)) }};
        {{ record_watermark(watermark_column) }}
    {%- endif -%}
{%- endmacro %}

{#- The same for a model with one row per upstream row that meets
    `condition` (songplays: the events that are valid plays): it also
    rebuilds when an upstream row changed since the watermark no longer meets
    the condition but still has a row here (an event delivered again, under
    another name, as something else than a play). -#}
{% macro rebuild_all_if_rows_vanish(
    watermark_column, upstream_relation, upstream_key, target_key, condition
) -%}
    {%- if not is_incremental() -%}
        select 1
    {%- else -%}
        {%- set watermark = incremental_watermark(watermark_column) -%}
        delete from {{ this }}
        where
            {{ files_replaced_since(watermark) }}
            or exists (
                select 1
                from {{ upstream_relation }} as changed
                inner join {{ this }} as built
                    on changed.{{ upstream_key }} = built.{{ target_key }}
                where
                    changed.last_loaded_at > {{ watermark }}
                    and not ({{ condition }})
            );
        {{ record_watermark(watermark_column) }}
    {%- endif -%}
{%- endmacro %}

{#- A pre-hook for every incremental model, after wait_for_loads: computes
    the model's watermark (incremental_watermark reads it) and records it in
    audit.build_watermarks for the tests of this build (built_this_run). A
    full build records the beginning of time. -#}
{% macro record_watermark(watermark_column) -%}
    {%- set relation = build_watermarks_relation() -%}
    {{ set_watermark(watermark_column) }};
    delete from {{ relation }}
    where
        invocation_id = '{{ invocation_id }}'
        and model_name = '{{ this.identifier }}';
    insert into {{ relation }} (invocation_id, model_name, previous_watermark)
    values (
        '{{ invocation_id }}',
        '{{ this.identifier }}',
        cast(
            current_setting('{{ watermark_setting(watermark_column) }}')
            as timestamp with time zone
        )
    )
{%- endmacro %}

{#- A pre-hook: computes a watermark (of another column) without recording
    it, e.g. songplays' song files watermark. -#}
{% macro set_watermark(watermark_column) -%}
    {%- set watermark -%}
        {%- if is_incremental() -%}
            {{ current_watermark(watermark_column) }}
        {%- else -%}
            cast('-infinity' as timestamp with time zone)
        {%- endif -%}
    {%- endset -%}
    select set_config(
        '{{ watermark_setting(watermark_column) }}',
        cast({{ watermark }} as text),
        true
    )
{%- endmacro %}

{#- A pre-hook for a model that reads the rows another model built in this
    invocation (built_this_run): puts that model's recorded watermark in a
    transaction-local setting, for the same reason as incremental_watermark. -#}
{% macro load_build_watermark(model_name) -%}
    select set_config(
        'sparkify.built_{{ model_name }}',
        cast({{ watermark_before_this_build(model_name) }} as text),
        true
    )
{%- endmacro %}

{#- The watermark `model_name` recorded before it was built in this dbt
    invocation: the rows past it are the rows this build wrote. The beginning
    of time when the model was built in full, or not built in this
    invocation (`dbt test`): then every row counts. -#}
{% macro watermark_before_this_build(model_name) -%}
    coalesce(
        (
            select build_watermarks.previous_watermark
            from {{ build_watermarks_relation() }} as build_watermarks
            where
                build_watermarks.invocation_id = '{{ invocation_id }}'
                and build_watermarks.model_name = '{{ model_name }}'
        ),
        cast('-infinity' as timestamp with time zone)
    )
{%- endmacro %}

{#- The rows of `model_name` this dbt invocation built: `column` past the
    watermark recorded before the build. In a model, after the pre-hook
    load_build_watermark(model_name). -#}
{% macro built_this_run(model_name, column) -%}
    {{ column }} > cast(
        current_setting('sparkify.built_{{ model_name }}')
        as timestamp with time zone
    )
{%- endmacro %}

{#- True (a SQL boolean) unless `model_name` was built incrementally in this
    invocation: built in full, or not built at all (its rows may then have
    changed in any way since a model downstream was built). -#}
{% macro built_in_full_this_run(model_name) -%}
    {{ watermark_before_this_build(model_name) }}
    <= cast('1900-01-01' as timestamp with time zone)
{%- endmacro %}

{#- A pre-hook for a model derived from `model_name`'s rows that reads only
    the rows built in this invocation (built_this_run): when that model was
    built in full, or not built, it empties this one, which then reads them
    all. -#}
{% macro rebuild_all_with(model_name) -%}
    {%- if not is_incremental() -%}
        select 1
    {%- else -%}
        delete from {{ this }} where {{ built_in_full_this_run(model_name) }}
    {%- endif -%}
{%- endmacro %}

{#- A pre-hook for audit.songplay_reconciliation: deletes the rows of the
    days (and the invalid-ts row, whose date is null) that the song plays
    int_events_deduplicated built in this run fall on; the build then
    appends them counted again. After load_build_watermark. -#}
{% macro delete_touched_days() -%}
    {%- if not is_incremental() -%}
        select 1
    {%- else -%}
        delete from {{ this }} as counted
        where
            counted.event_date in (
                select cast(plays.event_at as date)
                from {{ ref('int_events_deduplicated') }} as plays
                where
                    plays.is_song_play
                    and {{ built_this_run(
                        'int_events_deduplicated', 'plays.last_loaded_at'
                    ) }}
            )
            or counted.event_date is null and exists (
                select 1
                from {{ ref('int_events_deduplicated') }} as plays
                where
                    plays.is_song_play
                    and plays.event_at is null
                    and {{ built_this_run(
                        'int_events_deduplicated', 'plays.last_loaded_at'
                    ) }}
            )
    {%- endif -%}
{%- endmacro %}

{#- A post-hook for the incremental tables: refreshes the planner's
    statistics. A table dbt has just created has none until autovacuum gets
    to it, and without them PostgreSQL guesses that `loaded_at > watermark`
    keeps a third of the table, and reads all of it; with them, the next
    build's new rows are an index range. ANALYZE samples a fixed number of
    rows: well under a second at any size. Dispatched. -#}
{% macro refresh_statistics() -%}
    {{ return(adapter.dispatch('refresh_statistics', 'sparkify')()) }}
{%- endmacro %}

{% macro default__refresh_statistics() -%}
    select 1
{%- endmacro %}

{% macro postgres__refresh_statistics() -%}
    analyze {{ this }}
{%- endmacro %}
