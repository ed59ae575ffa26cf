{#- Least privilege, kept by every build (see src/sparkify/roles.py).

    dbt's `grants` config (dbt_project.yml) grants select on each mart to the
    analyst role inside the build's own transaction, so a rebuilt mart is
    never visible without its grant. This override makes each grant
    conditional: a role that does not exist (a plain `make run` on the
    embedded server, before `make roles`) is skipped with a notice instead of
    failing the build. Role names must be plain lowercase identifiers. -#}
{% macro postgres__get_grant_sql(relation, privilege, grantees) -%}
    {%- do check_role_names(grantees) %}
    do $grants$
    begin
    {%- for grantee in grantees %}
        if exists (select from pg_roles where rolname = '{{ grantee }}') then
            grant {{ privilege }} on {{ relation.render() }} to {{ grantee }};
        else
            raise notice 'grants: no role {{ grantee }} yet (make roles)';
        end if;
    {%- endfor %}
    end
    $grants$
{%- endmacro %}

{#- Spark (session or Thrift, without Unity Catalog) has no roles to grant
    to: the grants config is skipped there, with a note in the log. -#}
{% macro spark__apply_grants(relation, grant_config, should_revoke) -%}
    {%- if grant_config -%}
        {%- do log(
            "grants: skipped on Spark for " ~ relation, info=false
        ) -%}
    {%- endif -%}
{%- endmacro %}

{#- For on-run-end: usage on a schema for roles that exist, when the schema
    does (the marts' select grants need it to be of any use). -#}
{% macro grant_schema_usage(schema_name, grantees) -%}
    {{ return(adapter.dispatch('grant_schema_usage', 'sparkify')(
        schema_name, grantees
    )) }}
{%- endmacro %}

{% macro spark__grant_schema_usage(schema_name, grantees) -%}
{%- endmacro %}

{% macro default__grant_schema_usage(schema_name, grantees) -%}
    {%- do check_role_names(grantees) %}
    do $grants$
    begin
    {%- for grantee in grantees %}
        if
            exists (select from pg_roles where rolname = '{{ grantee }}')
            and exists (
                select from pg_namespace where nspname = '{{ schema_name }}'
            )
            then
            grant usage on schema {{ adapter.quote(schema_name) }}
            to {{ grantee }};
        end if;
    {%- endfor %}
    end
    $grants$
{%- endmacro %}

{#- Role names go into SQL unquoted: only plain lowercase identifiers pass. -#}
{% macro check_role_names(grantees) -%}
    {%- for grantee in grantees -%}
        {%- if not modules.re.match('^[a-z_][a-z0-9_]{0,62}$', grantee) -%}
            {{ exceptions.raise_compiler_error(
                "grants: role name '" ~ grantee
                ~ "' is not a lowercase identifier"
            ) }}
        {%- endif -%}
    {%- endfor -%}
{%- endmacro %}
