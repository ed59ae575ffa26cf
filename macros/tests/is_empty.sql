{#- Fails (or warns) with one result per row of the model: for relations
    that should be empty, such as the loader's rejects. -#}
{% test is_empty(model) %}
    select *
    from {{ model }}
{% endtest %}
