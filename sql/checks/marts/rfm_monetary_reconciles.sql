-- rfm_scores.monetary must equal the window revenue recomputed straight from orders: per customer
-- (in customers, with >= 1 completed order in the window) the sum of revenue_amount of all their
-- orders with ordered_on in (as_of_date - rfm_window_months months, as_of_date]. Returns every
-- customer where the two differ or only one side has the customer; zero rows also means the total
-- of rfm monetary equals the total window revenue of the attributed orders.

with

customers as (

    select customer_id from customers

),

orders as (

    select * from orders

),

rfm_scores as (

    select * from rfm_scores

),

settings as (

    select
        cast(getvariable('as_of_date') as date) as as_of_date,
        cast(
            cast(getvariable('as_of_date') as date)
            - to_months(cast(getvariable('rfm_window_months') as integer))
            as date
        ) as window_start_on

),

expected as (

    select
        orders.customer_id,
        sum(orders.revenue_amount) as expected_monetary

    from orders
    cross join settings
    where
        orders.ordered_on > settings.window_start_on
        and orders.ordered_on <= settings.as_of_date
    group by orders.customer_id
    having
        count(*) filter (where orders.status = 'completed') > 0
        -- per customer, not per order: the same rows, one membership test per customer
        and orders.customer_id in (select customer_id from customers)

)

select
    coalesce(expected.customer_id, rfm_scores.customer_id) as customer_id,
    expected.expected_monetary,
    rfm_scores.monetary

from expected
full outer join rfm_scores on expected.customer_id = rfm_scores.customer_id
where expected.expected_monetary is distinct from rfm_scores.monetary
