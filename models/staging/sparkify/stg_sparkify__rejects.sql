with

source as (
    select
        source_file,
        line_number,
        line,
        reason,
        detail,
        rejected_at
    from {{ source('sparkify', 'rejects') }}
),

final as (
    select
        source_file,
        line_number,
        reason,
        detail,
        -- The line as read, kept as bytes: it may not be valid UTF-8.
        line as line_bytes,
        cast(octet_length(line) as integer) as line_size_bytes,
        rejected_at
    from source
)

select * from final
