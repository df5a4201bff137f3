-- customer_360: one wide row per customer in customers (exactly one, checked by
-- sql/checks/marts/customer_360_one_row_per_customer.sql).
--
--   golden attributes   straight from customers
--   lifetime stats      from the core model customer_order_stats (orders on or before
--                       as_of_date; see that model for each column):
--     first_order_on / last_order_on, lifetime_orders, lifetime_revenue (0 if none),
--     web_orders / store_orders, web_revenue / store_revenue
--     channel_mix                      from completed orders: 'online_only' (web only),
--                                      'store_only' (store only), 'omnichannel' (both), NULL (none)
--   rfm                 from rfm_scores (NULL when no completed order in the RFM window); its
--                       window-only first/last order dates are left out (lifetime ones above)
--   loyalty / survey    from loyalty_segments
--   purchase pattern    completed orders on or before as_of_date (purchase days from the core
--                       model purchase_days):
--     mean_interpurchase_days / interpurchase_cv   mean and coefficient of variation
--                      (stddev_pop / mean) of the days between consecutive distinct purchase days
--                      (NULL below 2 purchase days; cv NULL below 3 purchase days or mean 0)
--     buyer_regularity  'regular' when >= 3 purchase days, mean interval <= regular_max_mean_days
--                       (default 90) and cv <= regular_max_cv (default 0.5); otherwise
--                       'occasional'; NULL without a completed order. Both thresholds can be set
--                       as DuckDB variables of the same name.
--     favourite_store, favourite_category  from customer_order_stats (most completed
--                       orders; NULL without a completed store order / categorised line)
--   clv                 from customer_value (built by ccv.analytics.customer_value before the
--                       marts): probability_alive, expected purchases in the next 90/180/365 days,
--                       expected_avg_order_value, clv over clv_horizon_months; clv_model_fitted is
--                       true when both models fitted and the customer has a purchase

with

settings as (

    select
        cast(getvariable('as_of_date') as date) as as_of_date,
        cast(coalesce(getvariable('regular_max_mean_days'), 90) as double) as regular_max_mean_days,
        cast(coalesce(getvariable('regular_max_cv'), 0.5) as double) as regular_max_cv

),

customers as (

    select * from customers

),

rfm_scores as (

    select * from rfm_scores

),

loyalty_segments as (

    select * from loyalty_segments

),

customer_value as (

    select * from customer_value

),

purchase_days as (

    select * from purchase_days

),

customer_order_stats as (

    select * from customer_order_stats

),

purchase_rhythm as (

    select
        purchase_days.customer_id,
        count(*) as purchase_days,
        avg(purchase_days.interval_days) as mean_interval_days,
        case
            when count(purchase_days.interval_days) >= 2
                and avg(purchase_days.interval_days) > 0
                then stddev_pop(purchase_days.interval_days)
                / avg(purchase_days.interval_days)
        end as interval_cv

    from purchase_days
    cross join settings
    where purchase_days.ordered_on <= settings.as_of_date
    group by purchase_days.customer_id

),

purchase_pattern as (

    select
        purchase_rhythm.customer_id,
        purchase_rhythm.mean_interval_days,
        purchase_rhythm.interval_cv,
        case
            when purchase_rhythm.purchase_days >= 3
                and purchase_rhythm.mean_interval_days <= settings.regular_max_mean_days
                and purchase_rhythm.interval_cv <= settings.regular_max_cv
                then 'regular'
            else 'occasional'
        end as buyer_regularity,
        customer_order_stats.favourite_store,
        customer_order_stats.favourite_category

    from purchase_rhythm
    cross join settings
    left join customer_order_stats
        on purchase_rhythm.customer_id = customer_order_stats.customer_id

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
        customer_order_stats.first_order_on,
        customer_order_stats.last_order_on,
        cast(coalesce(customer_order_stats.lifetime_orders, 0) as integer) as lifetime_orders,
        cast(coalesce(customer_order_stats.lifetime_revenue, 0) as decimal(18, 2))
            as lifetime_revenue,
        cast(coalesce(customer_order_stats.web_orders, 0) as integer) as web_orders,
        cast(coalesce(customer_order_stats.store_orders, 0) as integer) as store_orders,
        cast(coalesce(customer_order_stats.web_revenue, 0) as decimal(18, 2)) as web_revenue,
        cast(coalesce(customer_order_stats.store_revenue, 0) as decimal(18, 2)) as store_revenue,
        case
            when customer_order_stats.web_orders > 0 and customer_order_stats.store_orders > 0
                then 'omnichannel'
            when customer_order_stats.web_orders > 0 then 'online_only'
            when customer_order_stats.store_orders > 0 then 'store_only'
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
        loyalty_segments.loyalty_stage,

        -- purchase pattern
        cast(round(purchase_pattern.mean_interval_days, 1) as double) as mean_interpurchase_days,
        cast(round(purchase_pattern.interval_cv, 3) as double) as interpurchase_cv,
        purchase_pattern.buyer_regularity,
        purchase_pattern.favourite_store,
        purchase_pattern.favourite_category,

        -- clv
        customer_value.probability_alive,
        customer_value.expected_purchases_90d,
        customer_value.expected_purchases_180d,
        customer_value.expected_purchases_365d,
        customer_value.expected_avg_order_value,
        customer_value.clv,
        customer_value.clv_horizon_months,
        coalesce(
            customer_value.model_fitted and customer_value.spend_model_fitted, false
        ) as clv_model_fitted

    from customers
    left join customer_order_stats on customers.customer_id = customer_order_stats.customer_id
    left join rfm_scores on customers.customer_id = rfm_scores.customer_id
    left join loyalty_segments on customers.customer_id = loyalty_segments.customer_id
    left join purchase_pattern on customers.customer_id = purchase_pattern.customer_id
    left join customer_value on customers.customer_id = customer_value.customer_id

)

select * from final
