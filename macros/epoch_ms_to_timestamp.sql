{#- Epoch milliseconds (any number type) to a UTC `timestamp` without time
    zone, exact to the millisecond: whole milliseconds times an interval,
    never a float division of seconds. A fractional millisecond is rounded.
    A value outside [1970-01-01, 2100-01-01) becomes null, never an error. -#}
{% macro epoch_ms_to_timestamp(expression) -%}
    {{ return(
        adapter.dispatch('epoch_ms_to_timestamp', 'sparkify')(expression)
    ) }}
{%- endmacro %}

{% macro default__epoch_ms_to_timestamp(expression) -%}
    case
        when {{ expression }} >= 0 and {{ expression }} < 4102444800000
            then {{ dbt.dateadd(
                'millisecond',
                'cast(round(cast(' ~ expression ~ ' as '
                ~ dbt.type_numeric() ~ ')) as bigint)',
                "cast('1970-01-01' as timestamp)",
            ) }}
    end
{%- endmacro %}

{% macro postgres__epoch_ms_to_timestamp(expression) -%}
    case
        when {{ expression }} >= 0 and {{ expression }} < 4102444800000
            then timestamp '1970-01-01'
            + cast(round(cast({{ expression }} as numeric)) as bigint)
            * interval '1 millisecond'
    end
{%- endmacro %}

{#- from_json gives a number that is not an integer as a double's text
    (1.538916620796E12): staging reads it through safe_to_numeric, an exact
    decimal. -#}
{% macro spark__epoch_ms_to_timestamp(expression) -%}
    case
        when {{ expression }} >= 0 and {{ expression }} < 4102444800000
            then timestamp_millis(
                cast(round(cast({{ expression }} as decimal(38, 12))) as bigint)
            )
    end
{%- endmacro %}
