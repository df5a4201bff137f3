-- The CRM records whose stg_customers row a run may change (`touched` of its incremental
-- header, see ccv.warehouse.models.Incremental): run with the run id ($run_id) after the run's
-- ingest, before stg_customers is updated. Why not every record the run delivered: a snapshot
-- source re-sends every record every night (at a million customers ~700k rows, ~1 % of them
-- changed), and a row delivered again with the same values leaves its record's row as it was
-- (stg_customers names a version's first delivery). A record's row changes only when
--   * the run delivered it with values other than the version stg_customers holds (or it is
--     new, or the row stg_customers names is gone);
--   * its deleted mark is no longer right: a new latest export holds it no more, or again; its
--     source stopped being a snapshot;
--   * its source's history was rewritten: a file of it replaced, rejected or renamed tonight,
--     or a snapshot export older than its latest loaded (by file_rank: natural order) — every
--     record of that source: which version wins, or which export first missed a record, may
--     have changed.
-- Rows of a file replaced or rejected tonight are added by the framework as for every model.
with exports as (
    select * from snapshot_exports()
),

latest_export as (
    select source, source_file from exports where age = 1
),

redelivered as (
    select n.source, n.source_record_id
    from raw_customers as n
    left join stg_customers as s
        on s.source = n.source
        and s.source_record_id = n.source_record_id
    left join raw_customers as o
        on o.source = s.source
        and o.source_file = s.source_file
        and o.row_number = s.row_number
    where n.run_id = $run_id
        and (o.source is null or crm_version(n) <> crm_version(o))
),

-- the records the latest export holds: stg_customers' in_latest_export, which reads the raw
-- rows of the touched keys only (a shared table macro would read the whole export every night)
present as (
    select r.source, r.source_record_id
    from raw_customers as r
    semi join latest_export as l using (source, source_file)
    union
    select q.source, q.record_key as source_record_id
    from quarantine as q
    semi join latest_export as l using (source, source_file)
    where q.record_key is not null
),

marks as (
    select s.source, s.source_record_id
    from stg_customers as s
    left join latest_export as l
        on l.source = s.source
    left join present as p
        on p.source = s.source
        and p.source_record_id = s.source_record_id
    where s.is_deleted <> (l.source is not null and p.source is null)
),

rewritten_sources as (
    select l.source
    from ingest_log as l
    inner join file_ranks() as f using (source, source_file)
    where l.run_id = $run_id
        and (
            l.status in ('replaced', 'rejected', 'moved')
            or (
                l.status = 'loaded'
                and exists (
                    select 1 from exports as e
                    where e.source = l.source and e.file_rank > f.file_rank
                )
            )
        )
),

rewritten as (
    select s.source, s.source_record_id
    from stg_customers as s
    semi join rewritten_sources as r using (source)
)

select source, source_record_id from redelivered
union
select source, source_record_id from marks
union
select source, source_record_id from rewritten
