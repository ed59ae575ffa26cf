{#- Fails (or warns) for each row whose JSON object column has `field`
    longer than `max_length` characters (staging nulls such ids). -#}
{% test json_field_fits(model, column_name, field, max_length) %}
    select *
    from {{ model }}
    where length({{ json_text(column_name, field) }}) > {{ max_length }}
{% endtest %}
