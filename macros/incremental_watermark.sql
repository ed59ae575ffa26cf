{#- For an incremental model: the newest load time already built into it
    (`max(column)` of this), less var('incremental_lookback_hours'); older
    than any load when the model is empty. Rows landed after it are the new
    work.

    The lookback is 0 by default because builds and loads never overlap:
    every incremental model first waits for the loader's lock
    (wait_for_loads), and the loader stamps all rows of a transaction with
    its start time. Raise the var only if something else writes raw.

    The value is computed once, by the pre-hook record_watermark (after the
    lock), and read here from a transaction-local setting: PostgreSQL's
    planner sees through a setting (it evaluates current_setting while
    planning), so `loaded_at > watermark` uses the index on loaded_at; with a
    subquery it would guess a third of the table and read all of it. A unit
    test runs no hooks: it gets the subquery. -#}
{% macro incremental_watermark(column) -%}
    {%- if model is defined and model.resource_type == 'unit_test' -%}
        {{ current_watermark(column) }}
    {%- else -%}
        cast(
            current_setting('{{ watermark_setting(column) }}')
            as timestamp with time zone
        )
    {%- endif -%}
{%- endmacro %}

{#- The watermark as a subquery on this, evaluated where it stands. -#}
{% macro current_watermark(column) -%}
    {%- set lookback_hours = var('incremental_lookback_hours') | int -%}
    (
        select
            coalesce(
                {{ subtract_hours('max(' ~ column ~ ')', lookback_hours) }},
                cast('1900-01-01' as timestamp with time zone)
            )
        from {{ this }}
    )
{%- endmacro %}

{% macro watermark_setting(column) -%}
    sparkify.watermark_{{ column }}
{%- endmacro %}

{#- A pre-hook for incremental models: waits until no load_raw.py is
    running, and keeps new loads waiting until the model's transaction
    ends, so the watermark above never misses rows of a load that was still
    committing. The loader takes the same lock exclusively. -#}
{% macro wait_for_loads() -%}
    {{ return(adapter.dispatch('wait_for_loads', 'sparkify')()) }}
{%- endmacro %}

{% macro default__wait_for_loads() -%}
    select 1
{%- endmacro %}

{% macro postgres__wait_for_loads() -%}
    select pg_advisory_xact_lock_shared(hashtext('sparkify.load_raw'))
{%- endmacro %}

{#- A pre-hook for a staging table of landed lines, before an incremental
    build: deletes the built lines of every file the loader landed again
    since the last build (raw.load_manifest) whose line is no longer in raw
    as built, because the file was replaced by a changed or shorter
    version. The build then inserts the lines landed since, so the table
    stays equal to a full refresh. -#}
{% macro delete_replaced_lines(landed_lines, load_manifest) -%}
    {%- if not is_incremental() -%}
        select 1
    {%- else -%}
        delete from {{ this }} as built
        where
            built.source_file in (
                select loaded_files.source_file
                from {{ load_manifest }} as loaded_files
                where loaded_files.loaded_at
                > {{ incremental_watermark('loaded_at') }}
            )
            and not exists (
                select 1
                from {{ landed_lines }} as landed
                where
                    landed.source_file = built.source_file
                    and landed.line_number = built.line_number
                    and landed.loaded_at = built.loaded_at
            )
    {%- endif -%}
{%- endmacro %}
