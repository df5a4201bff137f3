-- segment_moves: who entered or left each RFM segment, loyalty cell and loyalty stage since the
-- previous run. One row per customer and dimension whose value changed.
--
-- Compares loyalty_segments of this run (it carries rfm_segment from rfm_scores) with the latest
-- earlier snapshot in segment_history (snapshot_on < as_of_date). The pipeline creates
-- segment_history before the marts build and appends this run's snapshot after the checks pass
-- (ccv.analytics.segment_history). No earlier snapshot (first run) -> no rows.
--
--   as_of_date            this run
--   previous_snapshot_on  the snapshot compared against (the same for every row of a run)
--   dimension             'rfm_segment' | 'loyalty_cell' | 'loyalty_stage'
--   from_value            value in the previous snapshot; NULL for a customer who is new since
--                         then, or (rfm_segment only) who had no completed order in the window
--   to_value              value now; NULL for a customer no longer in customers (merged by
--                         identity resolution), or (rfm_segment only) without an order in window
--   move_type             'new_customer' (not in the previous snapshot), 'left_customers' (not in
--                         customers any more) or 'moved'
--
-- A value that stays NULL on both sides is not a move (a new prospect enters no rfm_segment).

with

settings as (

    select cast(getvariable('as_of_date') as date) as as_of_date

),

loyalty_segments as (

    select * from loyalty_segments

),

segment_history as (

    select * from segment_history

),

previous_snapshot as (

    select max(segment_history.snapshot_on) as previous_snapshot_on

    from segment_history
    cross join settings
    where segment_history.snapshot_on < settings.as_of_date

),

previous_segments as (

    select segment_history.*

    from segment_history
    inner join previous_snapshot
        on segment_history.snapshot_on = previous_snapshot.previous_snapshot_on

),

current_values as (

    select customer_id, 'rfm_segment' as dimension, rfm_segment as segment_value
    from loyalty_segments
    union all
    select customer_id, 'loyalty_cell' as dimension, loyalty_cell as segment_value
    from loyalty_segments
    union all
    select customer_id, 'loyalty_stage' as dimension, loyalty_stage as segment_value
    from loyalty_segments

),

previous_values as (

    select customer_id, 'rfm_segment' as dimension, rfm_segment as segment_value
    from previous_segments
    union all
    select customer_id, 'loyalty_cell' as dimension, loyalty_cell as segment_value
    from previous_segments
    union all
    select customer_id, 'loyalty_stage' as dimension, loyalty_stage as segment_value
    from previous_segments

),

compared as (

    select
        coalesce(current_values.customer_id, previous_values.customer_id) as customer_id,
        coalesce(current_values.dimension, previous_values.dimension) as dimension,
        previous_values.segment_value as from_value,
        current_values.segment_value as to_value,
        case
            when previous_values.customer_id is null then 'new_customer'
            when current_values.customer_id is null then 'left_customers'
            else 'moved'
        end as move_type

    from current_values
    full outer join previous_values
        on current_values.customer_id = previous_values.customer_id
        and current_values.dimension = previous_values.dimension

),

final as (

    select
        -- run
        settings.as_of_date,
        previous_snapshot.previous_snapshot_on,

        -- ids
        compared.customer_id,

        -- move
        compared.dimension,
        compared.from_value,
        compared.to_value,
        compared.move_type

    from compared
    cross join settings
    cross join previous_snapshot
    where
        previous_snapshot.previous_snapshot_on is not null
        and compared.from_value is distinct from compared.to_value

)

select * from final
