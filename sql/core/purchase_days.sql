-- incremental: key = customer_id; after = orders
-- purchase_days: one row per customer and day with at least one completed order, the unit of
-- purchase behaviour for the CLV inputs (ccv.analytics.customer_value) and the purchase rhythm of
-- customer_360. Several completed orders on one day are one purchase day.
--
--   orders          completed orders of the customer that day
--   day_value       their summed revenue_amount
--   interval_days   days since the customer's previous purchase day; NULL on the first one
--
-- Built over the whole history (no as-of cut): a consumer keeps the days on or before its as-of
-- date, and since a day's previous purchase day is earlier, its interval stays correct. A
-- customer's rows depend on its own orders alone, so a night recomputes only the customers
-- whose orders `orders` logged as changed (before and after: an order that moved customer
-- counts for both). Kept as
-- one table so the 10M-order scan, the grouping by customer and day and the window over the
-- days run once per night instead of once per consumer.
with orders as (
    select * from orders
),

completed_days as (
    select
        customer_id,
        ordered_on,
        count(*) as orders,
        sum(revenue_amount) as day_value
    from orders
    where
        customer_id is not null
        and status = 'completed'
    group by customer_id, ordered_on
),

final as (
    select
        -- ids
        customer_id,
        -- dates
        ordered_on,
        -- numerics
        orders,
        day_value,
        date_diff(
            'day', lag(ordered_on) over (partition by customer_id order by ordered_on), ordered_on
        ) as interval_days
    from completed_days
)

select * from final
