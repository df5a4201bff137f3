-- incremental: key = order_key; after = stg_order_lines, stg_orders; changes = order_key
-- Order lines of the orders in stg_orders, with the order's channel, status and date so that
-- product analyses need no join. Lines of orders that were quarantined or never delivered are
-- left out (they have no order to belong to). The customer is on `orders`, via order_key.
with stg_order_lines as (
    select * from stg_order_lines
),

stg_orders as (
    select * from stg_orders
),

final as (
    select
        -- ids
        l.order_line_key,
        l.order_key,
        l.order_id,
        l.line_number,
        l.sku,
        -- strings
        l.product_name,
        l.category,
        o.channel,
        o.status,
        -- numerics
        l.quantity,
        l.unit_price,
        l.line_amount,
        -- timestamps
        o.ordered_at,
        o.ordered_on
    from stg_order_lines as l
    inner join stg_orders as o
        on o.order_key = l.order_key
)

select * from final
