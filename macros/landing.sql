{#- The landing tables (source sparkify) where the engine does not hold
    them itself. On PostgreSQL the loader creates them (raw.*): nothing to
    do. On Spark the loader writes Parquet files into a lake folder
    (load_raw.py --lake, ingest/raw_loader/lake.py; env var SPARKIFY_LAKE),
    and this on-run-start hook declares them: one external table per folder
    in schema raw_lake, and in schema raw the views that the sources read,
    which keep only committed loads and each file's current version. They
    must exist before any model or unit test reads a source. -#}
{% macro create_landing_tables() -%}
    {{ return(adapter.dispatch('create_landing_tables', 'sparkify')()) }}
{%- endmacro %}

{% macro default__create_landing_tables() -%}
{%- endmacro %}

{#- The lake tables' columns: those ingest/raw_loader/lake.py writes. Parquet
    columns are matched by name: a file written before a column was added
    reads it as null (etag, feed_root, recorded_by_load). -#}
{% macro lake_table_columns() -%}
    {{ return({
        'loads': 'load_id bigint, source_kind string, file_count int,'
            ~ ' row_count int, reject_count int, replaced_file_count int,'
            ~ ' loaded_at timestamp',
        'load_manifest': 'source_file string, source_kind string,'
            ~ ' checksum string, size_bytes bigint, mtime_ns bigint,'
            ~ ' etag string, feed_root string,'
            ~ ' row_count int, reject_count int, loaded_at timestamp,'
            ~ ' first_loaded_at timestamp, load_id bigint, is_removed boolean,'
            ~ ' recorded_by_load bigint',
        'events': 'source_file string, line_number int, payload string,'
            ~ ' loaded_at timestamp, load_id bigint',
        'songs': 'source_file string, line_number int, payload string,'
            ~ ' loaded_at timestamp, load_id bigint',
        'rejects': 'source_file string, line_number int, line binary,'
            ~ ' reason string, detail string, rejected_at timestamp,'
            ~ ' load_id bigint',
    }) }}
{%- endmacro %}

{#- Each statement alone: a Spark hook runs one statement. Returns nothing
    for the hook itself to run. -#}
{% macro spark__create_landing_tables() -%}
    {%- if execute -%}
        {%- set lake = env_var('SPARKIFY_LAKE', '') -%}
        {%- if not lake -%}
            {%- do exceptions.raise_compiler_error(
                "set SPARKIFY_LAKE to the lake folder that"
                ~ " load_raw.py --lake wrote (make run-spark does)"
            ) -%}
        {%- endif -%}
        {%- set raw = raw_relation('loads').schema -%}
        {%- do run_query('create schema if not exists raw_lake') -%}
        {%- do run_query('create schema if not exists ' ~ raw) -%}
        {%- do refuse_another_lake(lake) -%}
        {%- for table, columns in lake_table_columns().items() -%}
            {#- Recreated each run, as the catalog outlives runs: the lake's
                path and columns are this run's, and the table's file
                listing is new. External tables (a location): dropping one
                leaves its files. -#}
            {%- do run_query('drop table if exists raw_lake.' ~ table) -%}
            {%- do run_query(
                'create table raw_lake.' ~ table ~ ' (' ~ columns ~ ')'
                ~ " using parquet location '" ~ lake ~ '/' ~ table ~ "'"
            ) -%}
        {%- endfor -%}
        {%- do run_query(
            'create or replace view ' ~ raw ~ '.loads as'
            ~ ' select * from raw_lake.loads'
        ) -%}
        {#- The file's current version: its latest committed manifest row,
            unless that row says a prune removed it. A row is committed
            with the load that wrote it (recorded_by_load: a restamp's own
            load; null in lakes before it, then load_id). -#}
        {%- set recorded_by =
            'coalesce(manifest.recorded_by_load, manifest.load_id)' -%}
        {%- do run_query(
            'create or replace view ' ~ raw ~ '.load_manifest as'
            ~ ' select source_file, source_kind, checksum, size_bytes,'
            ~ ' mtime_ns, row_count, reject_count, loaded_at,'
            ~ ' first_loaded_at, load_id, etag, feed_root from ('
            ~ ' select manifest.*, row_number() over ('
            ~ ' partition by manifest.source_file'
            ~ ' order by ' ~ recorded_by ~ ' desc) as version_rank'
            ~ ' from raw_lake.load_manifest as manifest'
            ~ ' where ' ~ recorded_by ~ ' in'
            ~ ' (select committed.load_id from raw_lake.loads as committed)'
            ~ ') as versions where version_rank = 1 and not is_removed'
        ) -%}
        {%- for table in ['events', 'songs', 'rejects'] -%}
            {%- do run_query(
                'create or replace view ' ~ raw ~ '.' ~ table ~ ' as'
                ~ ' select landed.* from raw_lake.' ~ table ~ ' as landed'
                ~ ' left semi join ' ~ raw ~ '.load_manifest as current_files'
                ~ ' on landed.source_file = current_files.source_file'
                ~ ' and landed.load_id = current_files.load_id'
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- The catalog (the cluster's, in PostgreSQL) outlives each run, and with it
    the incremental models and audit.consumed_loads, whose load ids are the
    lake's. A build on another lake would take its loads for consumed ones
    (load ids start at 1 in every lake): refused, unless --full-refresh
    rebuilds every model from the new lake. -#}
{% macro refuse_another_lake(lake) -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return(none) }}
    {%- endif -%}
    {#- get_relation: a schema not created yet (audit, on a first run that
        selects no audit model) is no relation, not an error. -#}
    {%- set consumed = consumed_loads_relation() -%}
    {%- set built = adapter.get_relation(
        database=consumed.database, schema=consumed.schema,
        identifier=consumed.identifier
    ) -%}
    {%- set landed = adapter.get_relation(
        database=consumed.database, schema='raw_lake', identifier='loads'
    ) -%}
    {%- if built is none or landed is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set described = run_query('describe table extended raw_lake.loads') -%}
    {%- set location = [] -%}
    {%- for row in described.rows if row[0] == 'Location' -%}
        {%- do location.append(row[1]) -%}
    {%- endfor -%}
    {#- Spark writes a local folder as file:/path. -#}
    {%- set before = (location[0] if location else '')
        .replace('file:', '').rstrip('/').rsplit('/', 1)[0] -%}
    {%- set now = lake.replace('file:', '').rstrip('/') -%}
    {%- if before and before != now -%}
        {%- do exceptions.raise_compiler_error(
            "this Spark catalog's models were built from the lake "
            ~ before ~ ", not SPARKIFY_LAKE=" ~ lake ~ ": build with"
            ~ " --full-refresh to replace them, or keep the other feed on a"
            ~ " cluster of its own (SPARK_DIR, SPARKIFY_METASTORE_DB)"
        ) -%}
    {%- endif -%}
{%- endmacro %}
