-- incremental: key = order_source, order_id; input = raw_order_lines; changes = order_key
-- One row per order line, from order-line files and from lines nested in order records.
-- The lines of an order come from the latest file that delivered lines for it, so a re-sent
-- order with fewer lines does not keep stale ones. line_amount defaults to quantity × unit_price.
-- not materialized: read by three CTEs below (see stg_orders)
with raw_order_lines as not materialized (
    select * from raw_order_lines
),

-- orders whose lines came in more than one delivery (load, file): only their lines need
-- ranking, so a hash aggregate over the orders replaces a window over every line
repeated as (
    select order_source, order_id
    from raw_order_lines
    group by order_source, order_id
    having min(loaded_at) <> max(loaded_at) or min(source_file) <> max(source_file)
),

files as (
    select * from file_ranks()
),

-- a run's files share one loaded_at: between them, the later file in natural order
-- (sql/macros/file_ranks.sql) is the later delivery
ranked as (
    select
        raw_order_lines.*,
        dense_rank() over (
            partition by order_source, order_id
            order by loaded_at desc, f.file_rank desc
        ) as delivery_rank
    from raw_order_lines
    semi join repeated using (order_source, order_id)
    inner join files as f using (source, source_file)
),

latest as (
    select * exclude (delivery_rank) from ranked where delivery_rank = 1
    union all
    select * from raw_order_lines
    anti join repeated using (order_source, order_id)
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
    from latest
)

select * from final
