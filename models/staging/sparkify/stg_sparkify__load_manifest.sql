with

source as (
    select
        source_file,
        source_kind,
        checksum,
        size_bytes,
        row_count,
        reject_count,
        loaded_at
    from {{ source('sparkify', 'load_manifest') }}
),

final as (
    select
        source_file,
        source_kind,
        checksum,
        size_bytes,
        row_count,
        reject_count,
        loaded_at
    from source
)

select * from final
