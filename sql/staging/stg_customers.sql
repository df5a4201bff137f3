-- One row per CRM record: the latest delivered version of each (source, source_record_id).
-- A CRM export re-sends records; the version with the newest updated_at wins, then the latest load.
-- Snapshot sources (`load = "snapshot"` in ingest_sources): a record absent from the source's
-- latest full file (greatest file name; its quarantined rows count as present) is kept but marked
-- is_deleted, with deleted_at = when that file was loaded. Raw rows are never erased.
-- not materialized: read by several CTEs below; each scan reads only the columns it needs, which
-- costs less than copying every CRM row into a materialized CTE first (see stg_orders)
with raw_customers as not materialized (
    select * from raw_customers
),

ingest_sources as (
    select * from ingest_sources
),

quarantine as (
    select * from quarantine
),

-- records delivered more than once (every night of a snapshot source): only their rows need
-- ranking (see stg_orders)
repeated as (
    select source, source_record_id
    from raw_customers
    group by source, source_record_id
    having count(*) > 1
),

ranked as (
    select
        raw_customers.*,
        row_number() over (
            partition by source, source_record_id
            order by updated_at desc nulls last, loaded_at desc, source_file desc, row_number desc
        ) as version_rank
    from raw_customers
    semi join repeated using (source, source_record_id)
),

latest as (
    select * exclude (version_rank) from ranked where version_rank = 1
    union all
    select * from raw_customers
    anti join repeated using (source, source_record_id)
),

snapshot_files as (
    select
        r.source,
        r.source_file,
        max(r.loaded_at) as loaded_at
    from raw_customers as r
    inner join ingest_sources as s
        on s.source = r.source
        and s.load = 'snapshot'
    group by all
),

latest_snapshot as (
    select
        source,
        arg_max(source_file, source_file) as source_file,
        arg_max(loaded_at, source_file) as loaded_at
    from snapshot_files
    group by source
),

in_latest_snapshot as (
    select r.source, r.source_record_id
    from raw_customers as r
    inner join latest_snapshot as l using (source, source_file)
    union
    select q.source, q.record_key as source_record_id
    from quarantine as q
    inner join latest_snapshot as l using (source, source_file)
    where q.record_key is not null
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
        coalesce(l.source is not null and i.source_record_id is null, false) as is_deleted,
        -- dates and timestamps
        c.birth_date,
        c.created_at,
        c.updated_at,
        case when l.source is not null and i.source_record_id is null then l.loaded_at end
            as deleted_at,
        -- lineage
        c.source_file,
        c.row_number,
        c.extra,
        c.loaded_at
    from latest as c
    left join latest_snapshot as l
        on l.source = c.source
    left join in_latest_snapshot as i
        on i.source = c.source
        and i.source_record_id = c.source_record_id
)

select * from final
