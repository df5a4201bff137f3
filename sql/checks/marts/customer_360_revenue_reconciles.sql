-- customer_360 lifetime order stats must match orders: per customer, lifetime_revenue equals the
-- sum of revenue_amount of their orders on or before as_of_date, and the channel split adds up
-- (web + store = lifetime, for orders and revenue). Returns the customers where anything differs.

with

orders as (

    select * from orders

),

customer_360 as (

    select * from customer_360

),

expected as (

    select
        orders.customer_id,
        sum(orders.revenue_amount) as expected_revenue

    from orders
    where
        orders.customer_id is not null
        and orders.ordered_on <= cast(getvariable('as_of_date') as date)
    group by orders.customer_id

)

select
    customer_360.customer_id,
    coalesce(expected.expected_revenue, 0) as expected_revenue,
    customer_360.lifetime_revenue,
    customer_360.web_revenue,
    customer_360.store_revenue,
    customer_360.lifetime_orders,
    customer_360.web_orders,
    customer_360.store_orders

from customer_360
left join expected on customer_360.customer_id = expected.customer_id
where
    customer_360.lifetime_revenue is distinct from coalesce(expected.expected_revenue, 0)
    or customer_360.web_revenue + customer_360.store_revenue
        is distinct from customer_360.lifetime_revenue
    or customer_360.web_orders + customer_360.store_orders
        is distinct from customer_360.lifetime_orders
