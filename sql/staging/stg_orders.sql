-- incremental: key = source, order_id; input = raw_orders; changes = order_key
-- One row per order or till transaction, typed and with amounts completed from each other:
-- a source that gives only net and discount still yields gross, and vice versa.
-- not materialized: read by three CTEs below; each scan reads only the columns it needs, which
-- costs less than copying every order into a materialized CTE first
with raw_orders as not materialized (
    select * from raw_orders
),

-- orders delivered more than once (a re-sent file, a later correction): only their rows need
-- ranking, so a hash aggregate over the keys replaces a sort of every order
repeated as (
    select source, order_id
    from raw_orders
    group by source, order_id
    having count(*) > 1
),

files as (
    select * from file_ranks()
),

-- a run's files share one loaded_at: between them, the later file in natural order
-- (sql/macros/file_ranks.sql) is the later delivery
ranked as (
    select
        raw_orders.*,
        row_number() over (
            partition by source, order_id
            order by loaded_at desc, f.file_rank desc, row_number desc
        ) as version_rank
    from raw_orders
    semi join repeated using (source, order_id)
    inner join files as f using (source, source_file)
),

latest as (
    select * exclude (version_rank) from ranked where version_rank = 1
    union all
    select * from raw_orders
    anti join repeated using (source, order_id)
),

final as (
    select
        -- ids
        source || ':' || order_id as order_key,
        order_id,
        source,
        customer_record_id,
        loyalty_id,
        store_id,
        -- the identity record of the identifiers (sql/macros/identity_record_key.sql)
        identity_record_key(email, phone, loyalty_id, customer_record_id) as record_key,
        -- strings
        lower(email) as email,
        phone,
        channel,
        status,
        coalesce(currency, 'GBP') as currency,
        -- numerics
        coalesce(gross_amount, net_amount + coalesce(discount_amount, 0)) as gross_amount,
        coalesce(discount_amount, 0) as discount_amount,
        net_amount,
        -- timestamps
        ordered_at,
        cast(ordered_at as date) as ordered_on,
        -- lineage
        source_file,
        row_number,
        extra
    from latest
)

select * from final
