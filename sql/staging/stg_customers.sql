-- incremental: key = source, source_record_id; input = raw_customers; touched = stg_customers; changes = source_record_id
-- One row per CRM record: the current version of each (source, source_record_id), as first
-- delivered.
-- A CRM export re-sends records; the version with the newest updated_at wins, then the latest
-- load. Its row here is that version's *first* delivery: the earliest row holding exactly the
-- same values (sql/macros/crm_version.sql), so its lineage (source_file, row_number, loaded_at)
-- says since when the record has read as it does, and a snapshot source re-sending an unchanged
-- record every night changes nothing here (a night updates only the records whose version
-- changed: sql/touched/stg_customers.sql).
-- Snapshot sources (`load = "snapshot"` in ingest_sources): a record absent from the source's
-- latest export (sql/macros/snapshot_exports.sql; its quarantined rows count as present) is kept
-- but marked is_deleted, with deleted_at = when the first export after its last delivery was
-- loaded. Raw rows are never erased.
-- not materialized: read by several CTEs below; each scan reads only the columns it needs, which
-- costs less than copying every CRM row into a materialized CTE first (see stg_orders)
with raw_customers as not materialized (
    select * from raw_customers
),

quarantine as (
    select * from quarantine
),

exports as (
    select * from snapshot_exports()
),

files as (
    select * from file_ranks()
),

-- records delivered more than once (every night of a snapshot source): only their rows need
-- ranking (see stg_orders)
repeated as (
    select source, source_record_id
    from raw_customers
    group by source, source_record_id
    having count(*) > 1
),

-- a run's files share one loaded_at: between them, the later file in natural order
-- (sql/macros/file_ranks.sql) is the later delivery
versions as (
    select
        raw_customers.*,
        f.file_rank,
        crm_version(raw_customers) as version,
        first_value(crm_version(raw_customers)) over (
            partition by source, source_record_id
            order by updated_at desc nulls last, loaded_at desc, file_rank desc, row_number desc
        ) as current_version
    from raw_customers
    semi join repeated using (source, source_record_id)
    inner join files as f using (source, source_file)
),

first_delivered as (
    select * exclude (version, current_version, file_rank)
    from versions
    where version = current_version
    qualify row_number() over (
        partition by source, source_record_id order by loaded_at, file_rank, row_number
    ) = 1
),

latest as (
    select * from first_delivered
    union all
    select * from raw_customers
    anti join repeated using (source, source_record_id)
),

latest_export as (
    select source, source_file, loaded_at from exports where age = 1
),

in_latest_export as (
    select r.source, r.source_record_id
    from raw_customers as r
    semi join latest_export as l using (source, source_file)
    union
    select q.source, q.record_key as source_record_id
    from quarantine as q
    semi join latest_export as l using (source, source_file)
    where q.record_key is not null
),

deleted as (
    select c.source, c.source_record_id
    from latest as c
    semi join latest_export as l using (source)
    anti join in_latest_export as i using (source, source_record_id)
),

-- the last export that delivered a deleted record (a row loaded or quarantined), and the first
-- export after it: the one that first missed the record
last_delivered as (
    select source, source_record_id, max(f.file_rank) as file_rank
    from (
        select r.source, r.source_record_id, r.source_file
        from raw_customers as r
        semi join deleted as d using (source, source_record_id)
        union all
        select q.source, q.record_key as source_record_id, q.source_file
        from quarantine as q
        semi join deleted as d
            on d.source = q.source
            and d.source_record_id = q.record_key
    )
    inner join files as f using (source, source_file)
    group by source, source_record_id
),

deleted_since as (
    select d.source, d.source_record_id, e.loaded_at as deleted_at
    from last_delivered as d
    asof left join exports as e
        on e.source = d.source
        and d.file_rank < e.file_rank
),

final as (
    select
        -- ids
        c.source,
        c.source_record_id,
        c.loyalty_id,
        -- strings
        c.first_name,
        c.last_name,
        c.full_name,
        lower(c.email) as email,
        c.phone,
        c.phone_region,
        c.gender,
        c.address_line,
        c.city,
        upper(c.postcode) as postcode,
        c.region,
        upper(c.country) as country,
        -- booleans
        c.email_opt_in,
        c.sms_opt_in,
        d.source is not null as is_deleted,
        -- dates and timestamps
        c.birth_date,
        c.created_at,
        c.updated_at,
        case when d.source is not null then coalesce(d.deleted_at, l.loaded_at) end as deleted_at,
        -- lineage
        c.source_file,
        c.row_number,
        c.extra,
        c.loaded_at
    from latest as c
    left join deleted_since as d
        on d.source = c.source
        and d.source_record_id = c.source_record_id
    left join latest_export as l
        on l.source = c.source
)

select * from final
