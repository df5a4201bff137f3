-- incremental: key = source, consent_id; input = raw_consents; after = stg_customers; touched = stg_consents; changes = consent_key
-- One row per consent event, from two places:
--   * consent files (sources of kind `consents` → raw_consents), latest load of each consent_id;
--   * the opt-in flags of CRM records (customers sources with consents_from_opt_in): each
--     non-null email_opt_in / sms_opt_in of a record's current version is an event on channel
--     email / sms at the record's updated_at (else created_at), method 'crm_opt_in_flag'.
-- The flags are derived here, not at ingest, so that they follow stg_customers' choice of the
-- current version of a record and need no second raw copy of the CRM file.
with raw_consents as (
    select * from raw_consents
),

stg_customers as (
    select * from stg_customers
),

ingest_sources as (
    select * from ingest_sources
),

files as (
    select * from file_ranks()
),

-- a run's files share one loaded_at: between them, the later file in natural order
-- (sql/macros/file_ranks.sql) is the later delivery
ranked as (
    select
        r.*,
        row_number() over (
            partition by r.source, r.consent_id
            order by r.loaded_at desc, f.file_rank desc, r.row_number desc
        ) as version_rank
    from raw_consents as r
    inner join files as f using (source, source_file)
),

from_files as (
    select
        r.source,
        r.consent_id,
        s.customer_source,
        r.customer_record_id,
        lower(r.email) as email,
        r.phone,
        r.loyalty_id,
        r.channel,
        r.is_opt_in,
        r.consented_at,
        r.method,
        r.source_file,
        r.row_number
    from ranked as r
    left join ingest_sources as s
        on s.source = r.source
    where r.version_rank = 1
),

crm_records as (
    select c.*
    from stg_customers as c
    inner join ingest_sources as s
        on s.source = c.source
        and s.consents_from_opt_in
),

crm_flags as (
    select *, 'email' as channel, email_opt_in as is_opt_in from crm_records
    union all
    select *, 'sms' as channel, sms_opt_in as is_opt_in from crm_records
),

from_crm as (
    select
        source,
        source_record_id || ':' || channel as consent_id,
        source as customer_source,
        source_record_id as customer_record_id,
        email,
        phone,
        loyalty_id,
        channel,
        is_opt_in,
        coalesce(updated_at, created_at) as consented_at,
        'crm_opt_in_flag' as method,
        source_file,
        row_number
    from crm_flags
    where is_opt_in is not null
),

unioned as (
    select * from from_files
    union all
    select * from from_crm
),

final as (
    select
        -- ids
        source || ':' || consent_id as consent_key,
        consent_id,
        source,
        customer_source,
        customer_record_id,
        loyalty_id,
        -- the identity record of the identifiers (sql/macros/identity_record_key.sql)
        identity_record_key(email, phone, loyalty_id, customer_record_id) as record_key,
        -- strings
        email,
        phone,
        channel,
        method,
        -- booleans
        is_opt_in,
        -- timestamps
        consented_at,
        -- lineage
        source_file,
        row_number
    from unioned
)

select * from final
