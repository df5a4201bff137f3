-- customer_360: one wide row per customer in customers (exactly one, checked by
-- sql/checks/marts/customer_360_one_row_per_customer.sql).
--
--   golden attributes   straight from customers
--   lifetime stats      all orders on or before as_of_date (orders after it are ignored):
--     first_order_on / last_order_on   first / last completed order (NULL if none)
--     lifetime_orders                  distinct completed orders (0 if none)
--     lifetime_revenue                 sum of revenue_amount: completed +net, store returns -net,
--                                      cancelled / refunded 0 (0.00 if no orders)
--     web_orders / store_orders        completed orders per channel
--     web_revenue / store_revenue      revenue_amount per channel
--     channel_mix                      from completed orders: 'online_only' (web only),
--                                      'store_only' (store only), 'omnichannel' (both), NULL (none)
--   rfm                 from rfm_scores (NULL when no completed order in the RFM window); its
--                       window-only first/last order dates are left out (lifetime ones above)
--   loyalty / survey    from loyalty_segments

with

settings as (

    select cast(getvariable('as_of_date') as date) as as_of_date

),

customers as (

    select * from customers

),

orders as (

    select * from orders

),

rfm_scores as (

    select * from rfm_scores

),

loyalty_segments as (

    select * from loyalty_segments

),

order_stats as (

    select
        orders.customer_id,
        min(orders.ordered_on) filter (where orders.status = 'completed') as first_order_on,
        max(orders.ordered_on) filter (where orders.status = 'completed') as last_order_on,
        count(distinct orders.order_key) filter (where orders.status = 'completed')
            as lifetime_orders,
        sum(orders.revenue_amount) as lifetime_revenue,
        count(distinct orders.order_key)
            filter (where orders.status = 'completed' and orders.channel = 'web') as web_orders,
        count(distinct orders.order_key)
            filter (where orders.status = 'completed' and orders.channel = 'store') as store_orders,
        sum(orders.revenue_amount) filter (where orders.channel = 'web') as web_revenue,
        sum(orders.revenue_amount) filter (where orders.channel = 'store') as store_revenue

    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.ordered_on <= settings.as_of_date
    group by orders.customer_id

),

final as (

    select
        -- ids
        customers.customer_id,
        customers.loyalty_id,

        -- person
        customers.first_name,
        customers.last_name,
        customers.full_name,
        customers.birth_date,
        customers.gender,

        -- contact
        customers.email,
        customers.phone,
        customers.address_line,
        customers.city,
        customers.postcode,
        customers.country,
        customers.email_opt_in,
        customers.sms_opt_in,

        -- lineage
        customers.first_seen_at,
        customers.source_count,
        customers.record_count,
        customers.sources,

        -- lifetime orders
        order_stats.first_order_on,
        order_stats.last_order_on,
        cast(coalesce(order_stats.lifetime_orders, 0) as integer) as lifetime_orders,
        cast(coalesce(order_stats.lifetime_revenue, 0) as decimal(18, 2)) as lifetime_revenue,
        cast(coalesce(order_stats.web_orders, 0) as integer) as web_orders,
        cast(coalesce(order_stats.store_orders, 0) as integer) as store_orders,
        cast(coalesce(order_stats.web_revenue, 0) as decimal(18, 2)) as web_revenue,
        cast(coalesce(order_stats.store_revenue, 0) as decimal(18, 2)) as store_revenue,
        case
            when order_stats.web_orders > 0 and order_stats.store_orders > 0 then 'omnichannel'
            when order_stats.web_orders > 0 then 'online_only'
            when order_stats.store_orders > 0 then 'store_only'
        end as channel_mix,

        -- rfm
        rfm_scores.recency_days,
        rfm_scores.frequency,
        rfm_scores.monetary,
        rfm_scores.avg_order_value,
        rfm_scores.r_score,
        rfm_scores.f_score,
        rfm_scores.m_score,
        rfm_scores.rfm_cell,
        rfm_scores.rfm_segment,

        -- survey
        loyalty_segments.response_count,
        loyalty_segments.latest_nps,
        loyalty_segments.latest_csat,
        loyalty_segments.nps_category,
        loyalty_segments.has_survey,

        -- loyalty
        loyalty_segments.is_repeat_buyer,
        loyalty_segments.is_lapsed,
        loyalty_segments.behavioural_loyalty,
        loyalty_segments.loyalty_cell,
        loyalty_segments.is_cell_from_behaviour_only,
        loyalty_segments.loyalty_stage

    from customers
    left join order_stats on customers.customer_id = order_stats.customer_id
    left join rfm_scores on customers.customer_id = rfm_scores.customer_id
    left join loyalty_segments on customers.customer_id = loyalty_segments.customer_id

)

select * from final
