-- The customers whose order_summaries row a night changes besides those whose orders changed
-- (`touched` of its incremental header, see ccv.warehouse.models.Incremental): those with an
-- order dated between the as-of date the table was last built for and tonight's (an order
-- dated after the as-of date is left out until the as-of date reaches it: dated ahead by a
-- till's clock, or tonight's as-of date set back). Every customer with an order when that
-- date is not known (the table is then recomputed whole, by key).
with settings as (
    select cast(getvariable('as_of_date') as date) as as_of_date
),

last_build as (
    select max(r.as_of_date) as as_of_date
    from model_state as m
    left join runs as r
        on r.run_id = m.run_id
    where m.model = 'order_summaries'
),

window_ as (
    select
        least(l.as_of_date, s.as_of_date) as after_day,
        greatest(l.as_of_date, s.as_of_date) as through_day,
        l.as_of_date is null as unknown
    from settings as s
    cross join last_build as l
)

select distinct o.customer_id
from orders as o
cross join window_ as w
where o.customer_id is not null
    and (w.unknown or (o.ordered_on > w.after_day and o.ordered_on <= w.through_day))
