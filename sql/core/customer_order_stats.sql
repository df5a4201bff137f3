-- incremental: key = customer_id; after = orders, order_lines; touched = customer_order_stats
-- customer_order_stats: one row per customer with an order on or before as_of_date (orders
-- after it are ignored) — the lifetime order figures of the customer 360 and the loyalty
-- segments. Kept by customer (sql/touched/customer_order_stats.sql says which a night
-- recomputes) because these marts are rebuilt whole every night (recency moves with the as-of
-- date) and this is their costly part: aggregating every order and order line again.
--   first_order_on / last_order_on   first / last completed order
--   lifetime_orders                  completed orders (order_key is the key of orders)
--   lifetime_revenue                 sum of revenue_amount: completed +net, store returns -net,
--                                    cancelled / refunded 0
--   web_orders / store_orders        completed orders per channel
--   web_revenue / store_revenue      revenue_amount per channel (NULL without such orders)
--   favourite_store     store_id of the most completed orders (ties: latest order, then lowest
--                       store_id); NULL without a completed store order
--   favourite_category  category in the most completed orders, from order_lines (lines whose
--                       own status is set and not 'completed' are ignored; ties: higher
--                       line_amount, then name); NULL without categorised lines
with

settings as (

    select cast(getvariable('as_of_date') as date) as as_of_date

),

orders as (

    select * from orders

),

order_lines as (

    select * from order_lines

),

-- not materialized: read by two CTEs below; each scan reads only the columns it needs
dated_orders as not materialized (

    select orders.*

    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.ordered_on <= settings.as_of_date

),

order_totals as (

    select
        customer_id,
        min(ordered_on) filter (where status = 'completed') as first_order_on,
        max(ordered_on) filter (where status = 'completed') as last_order_on,
        count(*) filter (where status = 'completed') as lifetime_orders,
        sum(revenue_amount) as lifetime_revenue,
        count(*) filter (where status = 'completed' and channel = 'web') as web_orders,
        count(*) filter (where status = 'completed' and channel = 'store') as store_orders,
        sum(revenue_amount) filter (where channel = 'web') as web_revenue,
        sum(revenue_amount) filter (where channel = 'store') as store_revenue

    from dated_orders
    group by customer_id

),

completed_orders as not materialized (

    select customer_id, order_key, store_id, ordered_on

    from dated_orders
    where status = 'completed'

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

order_categories as (

    -- one row per order and category: an order counts once for each category it holds.
    -- Joined before aggregating, so a night's update reads only its customers' lines.
    select
        completed_orders.customer_id,
        order_lines.order_key,
        order_lines.category,
        sum(order_lines.line_amount) as category_amount

    from completed_orders
    inner join order_lines on completed_orders.order_key = order_lines.order_key
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
        order_totals.customer_id,
        order_totals.first_order_on,
        order_totals.last_order_on,
        order_totals.lifetime_orders,
        order_totals.lifetime_revenue,
        order_totals.web_orders,
        order_totals.store_orders,
        order_totals.web_revenue,
        order_totals.store_revenue,
        favourite_store.store_id as favourite_store,
        favourite_category.category as favourite_category

    from order_totals
    left join favourite_store on order_totals.customer_id = favourite_store.customer_id
    left join favourite_category on order_totals.customer_id = favourite_category.customer_id

)

select * from final
