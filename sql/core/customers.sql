-- The golden record: one row per resolved customer.
-- Survivorship (issue 2 rule, refined by identity resolution): for each attribute, the value of the
-- most recently observed record that has one, CRM records before order/survey records.
with customer_xref as (
    select * from customer_xref
),

identity_records as (
    select * from identity_records
),

stg_customers as (
    select * from stg_customers
),

records as (
    select
        xref.customer_id,
        xref.source,
        xref.source_record_id,
        ir.first_name,
        ir.last_name,
        crm.full_name,
        ir.email,
        ir.phone,
        ir.loyalty_id,
        ir.birth_date,
        ir.postcode,
        crm.gender,
        crm.address_line,
        crm.city,
        crm.country,
        crm.email_opt_in,
        crm.sms_opt_in,
        coalesce(crm.created_at, ir.observed_at) as seen_at,
        -- survivorship priority: CRM records first, then the most recently observed
        struct_pack(is_crm := xref.record_kind = 'customer', observed_at := ir.observed_at)
            as priority
    from customer_xref as xref
    inner join identity_records as ir using (source, source_record_id)
    left join stg_customers as crm
        on xref.record_kind = 'customer'
        and crm.source = xref.source
        and crm.source_record_id = xref.source_record_id
),

golden as (
    select
        -- ids
        customer_id,
        arg_max(loyalty_id, priority) filter (where loyalty_id is not null) as loyalty_id,
        -- strings
        arg_max(first_name, priority) filter (where first_name is not null) as first_name,
        arg_max(last_name, priority) filter (where last_name is not null) as last_name,
        arg_max(email, priority) filter (where email is not null) as email,
        arg_max(phone, priority) filter (where phone is not null) as phone,
        arg_max(gender, priority) filter (where gender is not null) as gender,
        arg_max(address_line, priority) filter (where address_line is not null) as address_line,
        arg_max(city, priority) filter (where city is not null) as city,
        arg_max(postcode, priority) filter (where postcode is not null) as postcode,
        arg_max(country, priority) filter (where country is not null) as country,
        -- booleans
        arg_max(email_opt_in, priority) filter (where email_opt_in is not null) as email_opt_in,
        arg_max(sms_opt_in, priority) filter (where sms_opt_in is not null) as sms_opt_in,
        -- dates
        arg_max(birth_date, priority) filter (where birth_date is not null) as birth_date,
        min(seen_at) as first_seen_at,
        -- provenance
        count(distinct source)::integer as source_count,
        count(*)::integer as record_count,
        list(distinct source order by source) as sources
    from records
    group by customer_id
),

final as (
    select
        customer_id,
        first_name,
        last_name,
        nullif(concat_ws(' ', first_name, last_name), '') as full_name,
        email,
        phone,
        birth_date,
        gender,
        address_line,
        city,
        postcode,
        country,
        loyalty_id,
        email_opt_in,
        sms_opt_in,
        first_seen_at,
        source_count,
        record_count,
        sources
    from golden
)

select * from final
