{#- The form of a title or an artist name that song matching compares:
    blanks trimmed, runs of white space made one space, case folded. The
    feed's near misses ("Désir " for "Désir", "DÉSIR" for "Désir") then
    compare equal, while different words never do. -#}
{% macro text_match_key(expression) -%}
    {{ return(adapter.dispatch('text_match_key', 'sparkify')(expression)) }}
{%- endmacro %}

{% macro default__text_match_key(expression) -%}
    lower(trim(regexp_replace({{ expression }}, '\\s+', ' ')))
{%- endmacro %}

{% macro postgres__text_match_key(expression) -%}
    {%- set collation = unicode_case_collation() -%}
    {%- set collate = ' collate "' ~ collation ~ '"' if collation else '' -%}
    lower(
        trim(regexp_replace({{ expression }}, '\s+', ' ', 'g')){{ collate }}
    )
{%- endmacro %}

{#- A collation under which PostgreSQL's lower() folds every letter, not
    only ASCII: a database created with the C locale folds "É" to "É". The
    builtin pg_c_utf8 (PostgreSQL 17+) when the server has it, else ICU's
    root collation (PostgreSQL 15 and 16 built with ICU). None when neither
    exists: lower() then folds by the database's own locale. -#}
{% macro unicode_case_collation() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query(
        "select collname from pg_catalog.pg_collation"
        ~ " where collname in ('pg_c_utf8', 'und-x-icu')"
        ~ " order by collname = 'pg_c_utf8' desc limit 1"
    ) -%}
    {%- if found.rows | length == 0 -%}
        {%- do log(
            "No Unicode case-folding collation (pg_c_utf8, und-x-icu) on this"
            ~ " server: song matching folds case by the database's locale.",
            info=true,
        ) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(found.rows[0][0]) }}
{%- endmacro %}
