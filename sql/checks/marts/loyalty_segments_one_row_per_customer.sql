-- loyalty_segments must hold exactly one row per customer_id of customers. Returns every
-- customer_id that is missing, doubled (also when customers itself holds it twice), unknown to
-- customers, or NULL.

with

customers as (

    select customer_id from customers

),

loyalty_segments as (

    select customer_id from loyalty_segments

),

expected as (

    select customer_id, count(*) as customers_rows
    from customers
    group by customer_id

),

actual as (

    select customer_id, count(*) as loyalty_segments_rows
    from loyalty_segments
    group by customer_id

)

select
    coalesce(expected.customer_id, actual.customer_id) as customer_id,
    coalesce(expected.customers_rows, 0) as customers_rows,
    coalesce(actual.loyalty_segments_rows, 0) as loyalty_segments_rows

from expected
full outer join actual on expected.customer_id = actual.customer_id
where
    expected.customers_rows is distinct from 1
    or actual.loyalty_segments_rows is distinct from 1
