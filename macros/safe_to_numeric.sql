{#- A text cast to numeric only when it is a clean decimal number (optional
    sign, digits, optional fraction and exponent, surrounding blanks allowed);
    anything else, including NaN and Infinity, becomes null instead of
    failing the query. The length limits keep every accepted value inside
    numeric's range. -#}
{% macro safe_to_numeric(expression) -%}
    {{ return(adapter.dispatch('safe_to_numeric', 'sparkify')(expression)) }}
{%- endmacro %}

{% macro default__safe_to_numeric(expression) -%}
    try_cast({{ expression }} as {{ dbt.type_numeric() }})
{%- endmacro %}

{#- The length check comes first and keeps the pattern unbounded: bounded
    repetitions ({1,100}) make PostgreSQL's regular expressions ~20x
    slower. -#}
{% macro postgres__safe_to_numeric(expression) -%}
    case
        when
            length(btrim({{ expression }})) <= 200
            and btrim({{ expression }})
            ~ '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
            then cast(btrim({{ expression }}) as numeric)
    end
{%- endmacro %}

{#- Spark: ANSI mode is off under dbt-spark, so a bad cast gives null
    silently; the same explicit guard as on PostgreSQL, with a Java regular
    expression. decimal(38, 12): Spark's widest exact type (26 digits before
    the point, 12 after); a value outside it is null. -#}
{% macro spark__safe_to_numeric(expression) -%}
    case
        when
            length(trim({{ expression }})) <= 200
            and trim({{ expression }})
            rlike '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
            then cast(trim({{ expression }}) as decimal(38, 12))
    end
{%- endmacro %}
