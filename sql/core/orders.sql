-- incremental: key = order_key; after = stg_orders, customer_xref; changes = customer_id
-- Orders and till transactions with their resolved customer (NULL for anonymous receipts).
-- revenue_amount is the signed contribution to revenue: a completed sale adds its net amount,
-- a return transaction subtracts it, cancelled and fully refunded orders add nothing.
with stg_orders as (
    select * from stg_orders
),

customer_xref as (
    select * from customer_xref where record_kind = 'order'
),

final as (
    select
        -- ids
        o.order_key,
        o.order_id,
        o.source,
        xref.customer_id,
        o.store_id,
        -- strings
        o.channel,
        o.status,
        o.currency,
        -- numerics
        o.gross_amount,
        o.discount_amount,
        o.net_amount,
        cast(
            case o.status
                when 'completed' then o.net_amount
                when 'returned' then -o.net_amount
                else 0
            end as decimal(18, 2)
        ) as revenue_amount,
        -- timestamps
        o.ordered_at,
        o.ordered_on
    from stg_orders as o
    left join customer_xref as xref
        on xref.source = o.source
        and xref.source_record_id = o.order_id
)

select * from final
