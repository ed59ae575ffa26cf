{#- Fails (or warns) for each row whose JSON object column lacks a non-blank
    value for `field`. -#}
{% test json_field_present(model, column_name, field) %}
    select *
    from {{ model }}
    where
        nullif(trim({{ json_text(column_name, field) }}), '') is null
{% endtest %}
