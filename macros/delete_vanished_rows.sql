{#- A post-hook for an incremental model: deletes the target rows whose key
    no longer has a row in the upstream relation (under an optional
    condition), e.g. after the loader replaced a changed file. An incremental
    run then keeps no row that a full refresh would not build. -#}
{% macro delete_vanished_rows(
    target_relation, target_key, upstream_relation, upstream_key, condition=none
) -%}
    delete from {{ target_relation }} as target_rows
    where not exists (
        select 1
        from {{ upstream_relation }} as upstream_rows
        where
            upstream_rows.{{ upstream_key }} = target_rows.{{ target_key }}
            and ({{ condition if condition else 'true' }})
    )
{%- endmacro %}
