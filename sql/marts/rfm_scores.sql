-- rfm_scores: recency / frequency / monetary scores, one row per customer (in customers) with at
-- least one completed order in the RFM window.
--
-- Window: orders with ordered_on in (as_of_date - rfm_window_months months, as_of_date], i.e. the
-- start day is excluded and as_of_date itself is included; orders after as_of_date are ignored.
--   first_order_on / last_order_on  first and last completed order in the window
--   recency_days      as_of_date - last_order_on, in days
--   frequency         distinct completed orders in the window
--   monetary          sum of revenue_amount of ALL the customer's orders in the window: completed
--                     orders add net, store returns subtract net, cancelled/refunded add 0. It
--                     can be negative when a return in the window belongs to a sale before it.
--   avg_order_value   monetary / frequency, rounded to 2 decimals
--
-- Score binning (1-5, 5 = best; low recency_days is good, high frequency / monetary are good).
-- Each score is computed among the customers of this table only:
--
--     score = least(5, 1 + floor(5 * (rank - 1) / (n - 1)))
--
-- where rank = rank() ordered from worst to best (ties share the lowest rank of their group) and
-- n = number of scored customers; (rank - 1) / (n - 1) is the share of the OTHER customers that are
-- strictly worse (= percent_rank), and it is computed in integer arithmetic, so there is no
-- floating-point edge at the bin boundaries. Consequences:
--   * equal values always get equal scores (ntile would split a tie across two scores);
--   * the worst value always scores 1 and the best unique value scores 5; with distinct values
--     the bins are quintiles (10 customers -> 1,1,2,2,3,3,4,4,5,5);
--   * a tie takes the score of its LOWEST member: if most customers bought exactly once, they all
--     get F = 1 (cume_dist-based binning would give them all F = 4 or 5 and make one-time buyers
--     look frequent). A tie at the very top can therefore land on 4 instead of 5;
--   * if all customers tie (or there is just one customer) everybody scores 1 on that measure.
--
-- rfm_cell is r || f || m (e.g. '545'); fm_score = floor((f_score + m_score) / 2) and
-- rfm_segment comes from rfm_segment_map (see that model for the grid).

with

customers as (

    select * from customers

),

orders as (

    select * from orders

),

rfm_segment_map as (

    select * from rfm_segment_map

),

settings as (

    select
        cast(getvariable('as_of_date') as date) as as_of_date,
        cast(
            cast(getvariable('as_of_date') as date)
            - to_months(cast(getvariable('rfm_window_months') as integer))
            as date
        ) as window_start_on  -- exclusive

),

window_orders as (

    select orders.*
    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.ordered_on > settings.window_start_on
        and orders.ordered_on <= settings.as_of_date

),

customer_window as (

    select
        customer_id,
        min(ordered_on) filter (where status = 'completed') as first_order_on,
        max(ordered_on) filter (where status = 'completed') as last_order_on,
        -- order_key is the primary key of orders: rows are distinct orders, no DISTINCT needed
        count(*) filter (where status = 'completed') as frequency,
        sum(revenue_amount) as monetary

    from window_orders
    group by customer_id

),

measured as (

    select
        customer_window.customer_id,
        customer_window.first_order_on,
        customer_window.last_order_on,
        date_diff('day', customer_window.last_order_on, settings.as_of_date) as recency_days,
        customer_window.frequency,
        customer_window.monetary

    from customer_window
    cross join settings
    where
        customer_window.frequency >= 1
        -- only customers of `customers` are scored; tested per customer rather than per order
        and customer_window.customer_id in (select customer_id from customers)

),

ranked as (

    select
        *,
        count(*) over () as scored_customers,
        -- worst first: ties share the lowest rank of their group
        rank() over (order by recency_days desc) as r_rank,
        rank() over (order by frequency asc) as f_rank,
        rank() over (order by monetary asc) as m_rank

    from measured

),

scored as (

    select
        *,
        least(5, 1 + (5 * (r_rank - 1)) // greatest(scored_customers - 1, 1)) as r_score,
        least(5, 1 + (5 * (f_rank - 1)) // greatest(scored_customers - 1, 1)) as f_score,
        least(5, 1 + (5 * (m_rank - 1)) // greatest(scored_customers - 1, 1)) as m_score

    from ranked

),

segmented as (

    select
        scored.*,
        (scored.f_score + scored.m_score) // 2 as fm_score,
        rfm_segment_map.rfm_segment

    from scored
    left join rfm_segment_map
        on scored.r_score = rfm_segment_map.r_score
        and (scored.f_score + scored.m_score) // 2 = rfm_segment_map.fm_score

),

final as (

    select
        -- ids
        customer_id,

        -- dates
        first_order_on,
        last_order_on,

        -- numerics
        cast(recency_days as integer) as recency_days,
        cast(frequency as integer) as frequency,
        cast(monetary as decimal(18, 2)) as monetary,
        cast(round(monetary / frequency, 2) as decimal(18, 2)) as avg_order_value,

        -- scores
        cast(r_score as integer) as r_score,
        cast(f_score as integer) as f_score,
        cast(m_score as integer) as m_score,
        cast(fm_score as integer) as fm_score,
        concat(r_score, f_score, m_score) as rfm_cell,
        rfm_segment

    from segmented

)

select * from final
