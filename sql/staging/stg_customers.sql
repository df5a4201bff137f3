-- One row per CRM record: the latest delivered version of each (source, source_record_id).
-- A CRM export re-sends records; the version with the newest updated_at wins, then the latest load.
with raw_customers as (
    select * from raw_customers
),

ranked as (
    select
        *,
        row_number() over (
            partition by source, source_record_id
            order by updated_at desc nulls last, loaded_at desc, source_file desc, row_number desc
        ) as version_rank
    from raw_customers
),

final as (
    select
        -- ids
        source,
        source_record_id,
        loyalty_id,
        -- strings
        first_name,
        last_name,
        full_name,
        lower(email) as email,
        phone,
        gender,
        address_line,
        city,
        upper(postcode) as postcode,
        region,
        upper(country) as country,
        -- booleans
        email_opt_in,
        sms_opt_in,
        -- dates and timestamps
        birth_date,
        created_at,
        updated_at,
        -- lineage
        source_file,
        row_number,
        extra,
        loaded_at
    from ranked
    where version_rank = 1
)

select * from final
