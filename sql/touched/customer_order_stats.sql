-- The customers whose customer_order_stats row a run may change (`touched` of its incremental
-- header, see ccv.warehouse.models.Incremental): run with the run id ($run_id) after orders
-- and order_lines were updated, before customer_order_stats is. The rows that can change are
-- those of
--   * the customers of the orders `orders` touched tonight (it logs their customer before and
--     after, so an order that moved counts for both);
--   * the customers of the orders whose lines `order_lines` touched tonight (it logs their
--     order keys: lines can be re-sent without their order);
--   * the customers with an order dated between the as-of date of the run that last built the
--     table and tonight's, either way: the moving as-of date lets those orders in or out.
--     Every customer with an order when either date is unknown.
with orders as (
    select * from orders
),

model_changes as (
    select * from model_changes
),

model_state as (
    select * from model_state
),

runs as (
    select * from runs
),

settings as (
    select cast(getvariable('as_of_date') as date) as as_of_date
),

last_build as (
    select max(runs.as_of_date) as as_of_date
    from model_state
    left join runs on model_state.run_id = runs.run_id
    where model_state.model = 'customer_order_stats'
),

moved_orders as (
    select key as customer_id
    from model_changes
    where run_id = $run_id and model = 'orders'
),

relined_orders as (
    select orders.customer_id
    from orders
    semi join model_changes
        on model_changes.run_id = $run_id
        and model_changes.model = 'order_lines'
        and model_changes.key = orders.order_key
),

passed_orders as (
    select orders.customer_id
    from orders
    cross join settings
    cross join last_build
    where
        last_build.as_of_date is null
        or settings.as_of_date is null
        or (
            orders.ordered_on > least(last_build.as_of_date, settings.as_of_date)
            and orders.ordered_on <= greatest(last_build.as_of_date, settings.as_of_date)
        )
),

final as (
    select customer_id from moved_orders
    union
    select customer_id from relined_orders
    union
    select customer_id from passed_orders
)

select customer_id from final where customer_id is not null
