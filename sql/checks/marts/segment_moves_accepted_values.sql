-- segment_moves rows outside the contract: an unknown dimension or move_type, a row that is not
-- a move (from = to), a move_type that does not match which side is missing, a snapshot that is
-- not earlier than the run, or a customer moving twice in one dimension.

with

segment_moves as (

    select * from segment_moves

),

doubled as (

    select customer_id, dimension
    from segment_moves
    group by customer_id, dimension
    having count(*) > 1

)

select segment_moves.*

from segment_moves
where
    dimension is null
    or dimension not in ('rfm_segment', 'loyalty_cell', 'loyalty_stage')
    or move_type is null
    or move_type not in ('new_customer', 'left_customers', 'moved')
    or from_value is not distinct from to_value
    or previous_snapshot_on is null
    or previous_snapshot_on >= as_of_date
    or as_of_date is distinct from cast(getvariable('as_of_date') as date)
    or (move_type = 'new_customer' and from_value is not null)
    or (move_type = 'left_customers' and to_value is not null)
    or exists (
        select 1
        from doubled
        where
            doubled.customer_id = segment_moves.customer_id
            and doubled.dimension = segment_moves.dimension
    )
