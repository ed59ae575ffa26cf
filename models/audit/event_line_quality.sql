{{
    config(
        materialized='rewrite',
        meta={'incremental_policy': 'files'},
        indexes=[
            {'columns': ['source_file'], 'unique': true},
        ],
    )
}}

-- What staging nulled or left out, counted per landed event file: the warn
-- tests read these counts, not every line. Incremental by file, like
-- staging itself.

with

staged_lines as (
    select
        source_file,
        gender,
        level,
        auth,
        method,
        page,
        has_valid_ts,
        has_valid_user_id,
        has_valid_session_id,
        has_valid_item_in_session,
        has_valid_length,
        has_valid_status,
        has_valid_registration
    from {{ ref('stg_sparkify__events') }}
    where {{ touched('source_file') }}
),

final as (
    select
        source_file,
        cast(count(*) as integer) as line_count,
        cast(count(*) filter (where not has_valid_ts) as integer)
            as invalid_ts_count,
        cast(count(*) filter (where not has_valid_user_id) as integer)
            as invalid_user_id_count,
        cast(count(*) filter (where not has_valid_session_id) as integer)
            as invalid_session_id_count,
        cast(count(*) filter (where not has_valid_item_in_session) as integer)
            as invalid_item_in_session_count,
        cast(count(*) filter (where not has_valid_length) as integer)
            as invalid_length_count,
        cast(count(*) filter (where not has_valid_status) as integer)
            as invalid_status_count,
        cast(count(*) filter (where not has_valid_registration) as integer)
            as invalid_registration_count,
        cast(count(*) filter (where gender not in ('F', 'M')) as integer)
            as unknown_gender_count,
        cast(count(*) filter (where level not in ('free', 'paid')) as integer)
            as unknown_level_count,
        cast(count(*) filter (
            where auth not in ('Logged In', 'Logged Out', 'Guest', 'Cancelled')
        ) as integer) as unknown_auth_count,
        cast(count(*) filter (where method not in ('GET', 'PUT')) as integer)
            as unknown_method_count,
        cast(count(*) filter (where {{ is_play_like_page('page') }}) as integer)
            as play_like_page_count
    from staged_lines
    group by source_file
)

select * from final
