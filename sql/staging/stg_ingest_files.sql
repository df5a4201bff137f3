-- The version of each input file now in use: its latest load, replacement or whole-file
-- rejection (a later "unchanged" run does not change which version is in use).
with ingest_log as (
    select * from ingest_log
),

ranked as (
    select
        *,
        row_number() over (
            partition by source, source_file order by finished_at desc
        ) as version_rank
    from ingest_log
    where status in ('loaded', 'replaced', 'rejected')
),

final as (
    select
        -- ids
        run_id,
        source,
        kind,
        source_file,
        content_hash,
        -- strings
        status,
        message,
        -- numerics
        rows_read,
        rows_loaded,
        rows_quarantined,
        -- timestamps
        finished_at
    from ranked
    where version_rank = 1
)

select * from final
