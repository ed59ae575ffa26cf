{#- The landing tables (source sparkify) where the engine does not hold
    them itself. On PostgreSQL the loader creates them (raw.*): nothing to
    do. On Spark the loader writes them as Iceberg tables into the cluster's
    catalog (load_raw.py --lake, src/sparkify/loader/lake.py), in schema
    raw_lake, and this on-run-start hook creates in schema raw the views that
    the sources read, which keep only committed loads and each file's current
    version. They must exist before any model or unit test reads a source. -#}
{% macro create_landing_tables() -%}
    {{ return(adapter.dispatch('create_landing_tables', 'sparkify')()) }}
{%- endmacro %}

{% macro default__create_landing_tables() -%}
{%- endmacro %}

{#- Each statement alone: a Spark hook runs one statement. Returns nothing
    for the hook itself to run. The catalog names the landing tables: no
    path is needed, as every process of the cluster reads the same catalog.
    A view is written only when it is missing or its definition changed
    (landing_view): every build starts with this hook, and two builds that
    start together would otherwise replace the same views at once, which
    Iceberg refuses to one of them ("View was updated concurrently"). -#}
{% macro spark__create_landing_tables() -%}
    {%- if execute -%}
        {%- set raw = raw_relation('loads').schema -%}
        {%- set landed = adapter.get_relation(
            database=none, schema='raw_lake', identifier='loads'
        ) -%}
        {%- if landed is none -%}
            {%- do exceptions.raise_compiler_error(
                "the Spark catalog holds no landing tables (raw_lake.loads):"
                ~ " land the feed first with load_raw.py --lake"
                ~ " (make run-spark does)"
            ) -%}
        {%- endif -%}
        {%- do run_query('create schema if not exists ' ~ raw) -%}
        {%- do refuse_another_lake(env_var('SPARKIFY_LAKE', '')) -%}
        {#- show views: namespace, viewName, isTemporary -#}
        {%- set existing = run_query('show views in ' ~ raw).rows
            | map(attribute=1) | map('lower') | list -%}
        {%- do landing_view(
            raw, 'loads', 'select * from raw_lake.loads', existing
        ) -%}
        {#- The file's current version: its latest committed manifest row,
            unless that row says a prune removed it. A row is committed
            with the load that wrote it (recorded_by_load: a restamp's own
            load; null in lakes before it, then load_id). -#}
        {%- set recorded_by =
            'coalesce(manifest.recorded_by_load, manifest.load_id)' -%}
        {%- do landing_view(
            raw, 'load_manifest',
            'select source_file, source_kind, checksum, size_bytes,'
            ~ ' mtime_ns, row_count, reject_count, loaded_at,'
            ~ ' first_loaded_at, load_id, etag, feed_root from ('
            ~ ' select manifest.*, row_number() over ('
            ~ ' partition by manifest.source_file'
            ~ ' order by ' ~ recorded_by ~ ' desc) as version_rank'
            ~ ' from raw_lake.load_manifest as manifest'
            ~ ' where ' ~ recorded_by ~ ' in'
            ~ ' (select committed.load_id from raw_lake.loads as committed)'
            ~ ') as versions where version_rank = 1 and not is_removed',
            existing
        ) -%}
        {%- for table in ['events', 'songs', 'rejects'] -%}
            {%- do landing_view(
                raw, table,
                'select landed.* from raw_lake.' ~ table ~ ' as landed'
                ~ ' left semi join ' ~ raw ~ '.load_manifest as current_files'
                ~ ' on landed.source_file = current_files.source_file'
                ~ ' and landed.load_id = current_files.load_id',
                existing
            ) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- The view schema.name as query, kept with the md5 of its query in the
    view's property sparkify.definition. A missing view is created with
    "if not exists", which two builds may run at once (Iceberg's catalog
    lets one create it and the other finds it). A view whose property
    differs is replaced: only the first build after its definition changed
    does that. -#}
{% macro landing_view(schema, name, query, existing) -%}
    {%- set definition = local_md5(query) -%}
    {%- set relation = schema ~ '.' ~ name -%}
    {%- if name in existing -%}
        {%- set kept = run_query(
            'show tblproperties ' ~ relation ~ " ('sparkify.definition')"
        ).rows[0][1] -%}
        {%- if kept == definition -%}
            {{ return(none) }}
        {%- endif -%}
    {%- endif -%}
    {%- do run_query(
        ('create or replace view ' if name in existing
            else 'create view if not exists ')
        ~ relation
        ~ " tblproperties ('sparkify.definition' = '" ~ definition ~ "')"
        ~ ' as ' ~ query
    ) -%}
{%- endmacro %}

{#- dbt reads the landing tables the cluster's catalog names, wherever their
    files are. SPARKIFY_LAKE, when set (make run-spark sets it), must be the
    lake they are in: a build meant for another lake, whose landing is in
    another catalog, would otherwise build this one's, and its incremental
    models would take that lake's load ids for the ones they consumed (load
    ids start at 1 in every lake). -#}
{% macro refuse_another_lake(lake) -%}
    {%- if not lake -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set described = run_query('describe table extended raw_lake.loads') -%}
    {%- set location = [] -%}
    {%- for row in described.rows if row[0] == 'Location' -%}
        {%- do location.append(row[1]) -%}
    {%- endfor -%}
    {#- LAKE/raw_lake/loads, as file:///path or s3://bucket/prefix/... -#}
    {%- set before = (location[0] if location else '').replace('file://', '')
        .replace('file:', '').rstrip('/').rsplit('/', 2)[0] -%}
    {%- set now = lake.replace('file://', '').replace('file:', '')
        .rstrip('/') -%}
    {%- if before and before != now -%}
        {%- do exceptions.raise_compiler_error(
            "SPARKIFY_LAKE=" ~ lake ~ ", but this Spark catalog's landing"
            ~ " tables are in the lake " ~ before ~ ": land the feed with"
            ~ " load_raw.py --lake " ~ lake ~ " on this catalog, or keep the"
            ~ " other feed on a cluster of its own (SPARK_DIR,"
            ~ " SPARKIFY_LAKE_CATALOG_DB, SPARKIFY_METASTORE_DB)"
        ) -%}
    {%- endif -%}
{%- endmacro %}
