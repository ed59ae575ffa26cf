{#- For a type 2 history (valid_to null on the current row): fails with one
    row per key whose current row's `column` differs from the same column in
    `current_relation` (the dimension that holds today's value), or that is
    in one but not the other. -#}
{% test current_period_matches(model, current_relation, key, column) %}
    with

    current_periods as (
        select
            {{ key }} as entity_key,
            {{ column }} as history_value
        from {{ model }}
        where is_current
    ),

    current_rows as (
        select
            {{ key }} as entity_key,
            {{ column }} as current_value
        from {{ current_relation }}
        where {{ column }} is not null
    )

    select
        coalesce(current_periods.entity_key, current_rows.entity_key)
            as entity_key,
        current_periods.history_value,
        current_rows.current_value
    from current_periods
    full outer join current_rows
        on current_periods.entity_key = current_rows.entity_key
    where
        current_periods.history_value is distinct from current_rows.current_value
{% endtest %}
