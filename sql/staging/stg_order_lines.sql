-- incremental: key = order_source, order_id; input = raw_order_lines; changes = order_key
-- One row per order line, from order-line files and from lines nested in order records.
-- The lines of an order come from the latest file that delivered lines for it, so a re-sent
-- order with fewer lines does not keep stale ones. line_amount defaults to quantity × unit_price.
with raw_order_lines as (
    select * from raw_order_lines
),

ranked as (
    select
        *,
        dense_rank() over (
            partition by order_source, order_id
            order by loaded_at desc, source_file desc
        ) as delivery_rank
    from raw_order_lines
),

final as (
    select
        -- ids
        order_source || ':' || order_id || ':' || line_number as order_line_key,
        order_source || ':' || order_id as order_key,
        order_id,
        line_number,
        order_source,
        source,
        sku,
        -- strings
        product_name,
        category,
        -- numerics
        quantity,
        unit_price,
        cast(coalesce(line_amount, quantity * unit_price) as decimal(18, 2)) as line_amount,
        -- lineage
        source_file,
        row_number,
        extra
    from ranked
    where delivery_rank = 1
)

select * from final
