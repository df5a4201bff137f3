-- incremental: key = customer_id; after = orders; touched = order_summaries
-- order_summaries: one row per customer with an order on or before the as-of date: the
-- lifetime order statistics of customer_360 (sql/marts/customer_360.sql documents each column).
--
-- Why a core table kept by customer: customer_360 is rebuilt every night (its recency, RFM and
-- CLV columns move with the as-of date), and aggregating ten million orders and their lines
-- for it was its largest cost. These statistics move only for a customer whose orders changed
-- (orders logs them, before and after a move) or one of whose orders the as-of date passed
-- (sql/touched/order_summaries.sql), so a night recomputes those customers only.
with settings as (
    select cast(getvariable('as_of_date') as date) as as_of_date
),

-- not materialized: read by two CTEs below (each scan reads only the columns it needs)
orders as not materialized (
    select * from orders
),

order_lines as (
    select * from order_lines
),

order_stats as (
    -- order_key is the primary key of orders (sql/checks/core/orders_key_unique.sql), so
    -- counting rows counts distinct orders without the cost of a DISTINCT aggregate
    select
        orders.customer_id,
        min(orders.ordered_on) filter (where orders.status = 'completed') as first_order_on,
        max(orders.ordered_on) filter (where orders.status = 'completed') as last_order_on,
        count(*) filter (where orders.status = 'completed') as lifetime_orders,
        sum(orders.revenue_amount) as lifetime_revenue,
        count(*) filter (where orders.status = 'completed' and orders.channel = 'web')
            as web_orders,
        count(*) filter (where orders.status = 'completed' and orders.channel = 'store')
            as store_orders,
        sum(orders.revenue_amount) filter (where orders.channel = 'web') as web_revenue,
        sum(orders.revenue_amount) filter (where orders.channel = 'store') as store_revenue

    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.ordered_on <= settings.as_of_date
    group by orders.customer_id
),

completed_orders as not materialized (
    select
        orders.customer_id,
        orders.order_key,
        orders.store_id,
        orders.ordered_on

    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.status = 'completed'
        and orders.ordered_on <= settings.as_of_date
),

store_orders as (
    -- one row per order (primary key), so count(*) counts distinct orders
    select
        customer_id,
        store_id,
        count(*) as store_orders,
        max(ordered_on) as last_store_order_on

    from completed_orders
    where store_id is not null
    group by customer_id, store_id
),

favourite_store as (
    select customer_id, store_id

    from store_orders
    qualify row_number() over (
        partition by customer_id
        order by store_orders desc, last_store_order_on desc, store_id
    ) = 1
),

-- one row per completed order and category: an order counts once for each category it holds.
-- Lines are joined to the orders first, so that a night's update reads only the lines of its
-- customers' orders. The pipeline guarantees an order_lines table (possibly empty); orders
-- follows stg_order_lines, so an order whose lines changed counts as its customer's change.
order_categories as (
    select
        completed_orders.customer_id,
        order_lines.order_key,
        order_lines.category,
        sum(order_lines.line_amount) as category_amount

    from order_lines
    inner join completed_orders on completed_orders.order_key = order_lines.order_key
    where
        order_lines.category is not null
        and coalesce(order_lines.status, 'completed') = 'completed'
    group by completed_orders.customer_id, order_lines.order_key, order_lines.category
),

category_orders as (
    select
        customer_id,
        category,
        count(*) as category_orders,
        sum(category_amount) as category_amount

    from order_categories
    group by customer_id, category
),

favourite_category as (
    select customer_id, category

    from category_orders
    qualify row_number() over (
        partition by customer_id
        order by category_orders desc, category_amount desc nulls last, category
    ) = 1
),

final as (
    select
        -- ids
        order_stats.customer_id,
        -- dates
        order_stats.first_order_on,
        order_stats.last_order_on,
        -- numerics
        order_stats.lifetime_orders,
        order_stats.lifetime_revenue,
        order_stats.web_orders,
        order_stats.store_orders,
        order_stats.web_revenue,
        order_stats.store_revenue,
        -- strings
        favourite_store.store_id as favourite_store,
        favourite_category.category as favourite_category

    from order_stats
    left join favourite_store on order_stats.customer_id = favourite_store.customer_id
    left join favourite_category on order_stats.customer_id = favourite_category.customer_id
)

select * from final
