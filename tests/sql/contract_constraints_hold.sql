{#- The contracts' constraints where the engine does not enforce them
    (Spark): one row per model, constraint and column set that a row breaks
    (a null in a not_null or primary key column, a primary key held by two
    rows, or a row for which a check is false). On PostgreSQL the server
    holds them, so the test is off. -#}
{{ config(enabled=not engine_enforces_constraints()) }}

-- Runs after every model with a contract, named here (a model with a
-- contract that is not named fails the test's compilation).
-- depends_on: {{ ref('int_first_plays') }}
-- depends_on: {{ ref('int_new_listeners_by_day') }}
-- depends_on: {{ ref('int_plays_by_song_day') }}
-- depends_on: {{ ref('artists') }}
-- depends_on: {{ ref('dates') }}
-- depends_on: {{ ref('songplays') }}
-- depends_on: {{ ref('songs') }}
-- depends_on: {{ ref('time') }}
-- depends_on: {{ ref('users') }}
-- depends_on: {{ ref('users_history') }}
-- depends_on: {{ ref('rpt_churn_signals') }}
-- depends_on: {{ ref('rpt_level_conversions') }}
-- depends_on: {{ ref('rpt_level_share_daily') }}
-- depends_on: {{ ref('rpt_plays_by_device') }}
-- depends_on: {{ ref('rpt_plays_by_hour_weekday') }}
-- depends_on: {{ ref('rpt_plays_by_location') }}
-- depends_on: {{ ref('rpt_sessions') }}
-- depends_on: {{ ref('rpt_top_artists') }}
-- depends_on: {{ ref('rpt_top_songs') }}

{%- set checks = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model'
        and node.config.contract.enforced -%}
        {%- if node.unique_id not in model.depends_on.nodes -%}
            {%- do exceptions.raise_compiler_error(
                node.name ~ " has a contract: add it to the depends_on"
                ~ " lines of contract_constraints_hold"
            ) -%}
        {%- endif -%}
        {%- set relation = model_relation(node.name) -%}
        {%- set keys = [] -%}
        {#- [columns, broken_by, the condition a row must meet] -#}
        {%- set rules = [] -%}
        {%- for column in node.columns.values() -%}
            {%- for constraint in column.constraints -%}
                {%- if constraint.type in ('not_null', 'primary_key') -%}
                    {%- do rules.append(
                        [[column.name], 'null', column.name ~ ' is not null']
                    ) -%}
                {%- endif -%}
                {%- if constraint.type == 'primary_key' -%}
                    {%- do keys.append([column.name]) -%}
                {%- elif constraint.type == 'check' -%}
                    {%- do rules.append(
                        [[column.name], 'check', constraint.expression]
                    ) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for constraint in node.constraints -%}
            {%- if constraint.type == 'primary_key' -%}
                {%- do keys.append(constraint.columns) -%}
            {%- elif constraint.type == 'check' -%}
                {%- do rules.append(
                    [constraint.columns, 'check', constraint.expression]
                ) -%}
            {%- endif -%}
        {%- endfor -%}
        {#- As in SQL, a check holds unless it is false (null passes). -#}
        {%- for columns, broken_by, condition in rules -%}
            {%- do checks.append(
                "select '" ~ node.name ~ "' as model_name, '"
                ~ columns | join(', ') ~ "' as key_columns, '"
                ~ broken_by ~ "' as broken_by, count(*) as row_count"
                ~ " from " ~ relation ~ " where not coalesce(("
                ~ condition ~ "), true) having count(*) > 0"
            ) -%}
        {%- endfor -%}
        {%- for key in keys -%}
            {%- do checks.append(
                "select '" ~ node.name ~ "' as model_name, '"
                ~ key | join(', ') ~ "' as key_columns,"
                ~ " 'duplicate' as broken_by, count(*) as row_count"
                ~ " from (select " ~ key | join(', ') ~ " from " ~ relation
                ~ " group by " ~ key | join(', ')
                ~ " having count(*) > 1) as duplicates having count(*) > 0"
            ) -%}
        {%- endfor -%}
    {%- endfor -%}
{%- endif %}

{% if checks -%}
    {{ checks | join('\nunion all\n') }}
{%- else -%}
    select 'none' as model_name
    where 1 = 0
{%- endif %}
