-- customer_360_pseudo has exactly one row per customer_360 row and unique, non-null pseudo ids.
with pseudo as (
    select * from customer_360_pseudo
),

customer_360 as (
    select * from customer_360
),

counts as (
    select
        (select count(*) from customer_360) as customers,
        count(*) as pseudo_rows,
        count(distinct pseudo_id) as pseudo_ids,
        count(*) filter (where pseudo_id is null) as null_ids
    from pseudo
),

final as (
    select * from counts
    where customers != pseudo_rows or pseudo_ids != pseudo_rows or null_ids > 0
)

select * from final
