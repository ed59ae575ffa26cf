{#- Fails (or warns) with one row for each combination of the columns that
    more than one row of the model holds: the uniqueness test of a composite
    key. Named and shaped like dbt_utils' test (out of reach here), so dbt
    infers the model's primary key from it. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select
        {{ combination_of_columns | join(', ') }},
        count(*) as n_records
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}
