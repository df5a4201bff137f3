-- customer_360 must hold exactly one row per customer_id of customers. Returns every
-- customer_id that is missing, doubled (also when customers itself holds it twice), unknown to
-- customers, or NULL.

with

customers as (

    select customer_id from customers

),

customer_360 as (

    select customer_id from customer_360

),

expected as (

    select customer_id, count(*) as customers_rows
    from customers
    group by customer_id

),

actual as (

    select customer_id, count(*) as customer_360_rows
    from customer_360
    group by customer_id

)

select
    coalesce(expected.customer_id, actual.customer_id) as customer_id,
    coalesce(expected.customers_rows, 0) as customers_rows,
    coalesce(actual.customer_360_rows, 0) as customer_360_rows

from expected
full outer join actual on expected.customer_id = actual.customer_id
where
    expected.customers_rows is distinct from 1
    or actual.customer_360_rows is distinct from 1
