-- customer_value (written by ccv.analytics.customer_value before the marts) must hold exactly one
-- row per customer_id of customers, built for this run's as_of_date: returns every customer_id
-- that is missing, doubled, unknown or NULL, and every row of a stale table.

with

customers as (

    select customer_id from customers

),

customer_value as (

    select customer_id, as_of_date from customer_value

),

expected as (

    select customer_id, count(*) as customers_rows
    from customers
    group by customer_id

),

actual as (

    select
        customer_id,
        count(*) as customer_value_rows,
        count(*) filter (
            where as_of_date is distinct from cast(getvariable('as_of_date') as date)
        ) as stale_rows
    from customer_value
    group by customer_id

)

select
    coalesce(expected.customer_id, actual.customer_id) as customer_id,
    coalesce(expected.customers_rows, 0) as customers_rows,
    coalesce(actual.customer_value_rows, 0) as customer_value_rows,
    coalesce(actual.stale_rows, 0) as stale_rows

from expected
full outer join actual on expected.customer_id = actual.customer_id
where
    expected.customers_rows is distinct from 1
    or actual.customer_value_rows is distinct from 1
    or actual.stale_rows > 0
