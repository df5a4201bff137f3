-- The exports of every snapshot source (`load = "snapshot"` in ingest_sources) whose rows are
-- loaded: each file whose last load loaded rows (one quarantined whole, or rejected, is no
-- export: it would mark every record deleted), with when it was loaded
-- (its ingest_log start), its `file_rank` (sql/macros/file_ranks.sql) and its `age`: 1 for the
-- latest (the last file in natural order: crm_10.csv after crm_9.csv, dated drops by date), 2
-- for the one before, ... Read from ingest_log, which keeps every file: an old export
-- whose raw rows were all pruned (src/ccv/ingest/snapshots.py) still counts, so the export
-- that first missed a record stays known (stg_customers.deleted_at).
create or replace macro snapshot_exports() as table
    with attempts as (
        select l.source, l.source_file, l.status, l.rows_loaded, l.started_at
        from ingest_log as l
        semi join ingest_sources as s
            on s.source = l.source
            and s.load = 'snapshot'
        where l.status in ('loaded', 'replaced', 'rejected')
        qualify row_number() over (
            partition by l.source, l.source_file order by l.started_at desc
        ) = 1
    )

    select
        a.source,
        a.source_file,
        a.started_at as loaded_at,
        f.file_rank,
        row_number() over (partition by a.source order by f.file_rank desc) as age
    from attempts as a
    inner join file_ranks() as f using (source, source_file)
    where a.status in ('loaded', 'replaced') and a.rows_loaded > 0
