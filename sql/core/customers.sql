-- The golden record: one row per resolved customer.
-- incremental: key = customer_id; after = customer_attributes, identity_records
-- Each attribute's value was chosen by its survivorship rule in `customer_attributes`
-- (built by src/ccv/identity/golden.py, which also records where every value came from).
with customer_attributes as (
    select * from customer_attributes
),

identity_records as (
    select * from identity_records
),

stg_consents as (
    select * from stg_consents
),

golden as (
    select
        customer_id,
        max(value) filter (where attribute = 'first_name') as first_name,
        max(value) filter (where attribute = 'last_name') as last_name,
        max(value) filter (where attribute = 'email') as email,
        max(value) filter (where attribute = 'phone') as phone,
        max(value) filter (where attribute = 'birth_date') as birth_date,
        max(value) filter (where attribute = 'gender') as gender,
        max(value) filter (where attribute = 'address_line') as address_line,
        max(value) filter (where attribute = 'city') as city,
        max(value) filter (where attribute = 'postcode') as postcode,
        max(value) filter (where attribute = 'region') as region,
        max(value) filter (where attribute = 'country') as country,
        max(value) filter (where attribute = 'loyalty_id') as loyalty_id,
        max(value) filter (where attribute = 'email_opt_in') as email_opt_in,
        max(value) filter (where attribute = 'sms_opt_in') as sms_opt_in
    from customer_attributes
    group by customer_id
),

-- An identity record stands for one CRM record or for all the transactions of one source that
-- carry the same identifiers (`transactions` counts them), so summing it per customer and source
-- counts the customer's rows in customer_xref without reading the crosswalk's millions of rows.
-- The earliest observation rides along, so identity_records is grouped once, not twice.
-- Consent events derived from a CRM record's opt-in flags are crosswalk rows of that record's
-- customer but no identity records of their own (src/ccv/identity/resolve.py,
-- FROM_CRM_FLAGS): they are counted from the staged consents, under the record's source.
crm_flag_consents as (
    select
        ir.customer_id,
        ir.source,
        count(*) as records,
        cast(null as timestamp) as first_observed_at
    from stg_consents as c
    inner join identity_records as ir
        on ir.record_kind = 'customer'
        and ir.source = c.customer_source
        and ir.source_record_id = c.customer_record_id
    where c.method = 'crm_opt_in_flag'
    group by ir.customer_id, ir.source
),

records_per_source as (
    select
        customer_id,
        source,
        sum(records) as records,
        min(first_observed_at) as first_observed_at
    from (
        select customer_id, source, transactions as records, first_observed_at
        from identity_records
        union all
        select * from crm_flag_consents
    )
    group by customer_id, source
),

-- counted from one row per customer and source: the same numbers as count(distinct source) and
-- list(distinct source) over the crosswalk, without DISTINCT aggregates over every record
provenance as (
    select
        customer_id,
        count(source)::integer as source_count,
        sum(records)::integer as record_count,
        list(source order by source) as sources,
        min(first_observed_at) as first_seen_at
    from records_per_source
    group by customer_id
),

final as (
    select
        -- ids
        p.customer_id,
        g.loyalty_id,
        -- strings
        g.first_name,
        g.last_name,
        nullif(concat_ws(' ', g.first_name, g.last_name), '') as full_name,
        g.email,
        g.phone,
        g.gender,
        g.address_line,
        g.city,
        g.postcode,
        g.region,
        g.country,
        -- booleans
        cast(g.email_opt_in as boolean) as email_opt_in,
        cast(g.sms_opt_in as boolean) as sms_opt_in,
        -- dates
        cast(g.birth_date as date) as birth_date,
        p.first_seen_at,
        -- provenance
        p.source_count,
        p.record_count,
        p.sources
    from provenance as p
    left join golden as g using (customer_id)
)

select * from final
