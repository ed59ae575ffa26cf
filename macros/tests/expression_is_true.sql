{#- Fails (or warns) for each row where a boolean SQL expression is not
    true (false or null). Our own small version of dbt_utils'. -#}
{% test expression_is_true(model, expression) %}
    select *
    from {{ model }}
    where not coalesce({{ expression }}, false)
{% endtest %}
