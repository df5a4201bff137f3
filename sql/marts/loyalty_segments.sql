-- loyalty_segments: behavioural + attitudinal loyalty, one row per customer in customers.
--
-- Stage threshold (change it here, or set the DuckDB variable loyal_min_orders):
--     loyal_min_orders = 4   completed orders in the RFM window needed for stage 'loyal'
--
-- Everything is "as of" getvariable('as_of_date'); orders and survey responses after it are ignored
-- (a response counts when its submitted_at falls on or before the as_of day).
--
--   rfm_segment          from rfm_scores; NULL without a completed order in the RFM window
--   response_count       survey responses submitted on or before as_of_date
--   latest_nps / _csat   the latest non-null answer by submitted_at (ties: highest response_key)
--   nps_category         latest_nps 9-10 'promoter' | 7-8 'passive' | 0-6 'detractor' | else NULL
--   has_survey           response_count > 0 (any response, NPS or not)
--   is_repeat_buyer      >= 2 completed orders in the RFM window
--   is_lapsed            recency_days > lapsed_after_days, or no completed order in the window but
--                        completed orders before it; never true for a customer who never bought
--   behavioural_loyalty  'high' when is_repeat_buyer and not is_lapsed, else 'low'
--
-- loyalty_cell (Dick & Basu): behaviour x attitude, attitude = nps_category of the latest NPS.
--
--                      | promoter        | passive / detractor | no NPS answer
--   -------------------+-----------------+---------------------+--------------------
--   behaviour high     | true_loyalty    | spurious_loyalty    | spurious_loyalty (*)
--   behaviour low      | latent_loyalty  | no_loyalty          | no_loyalty       (*)
--
--   (*) is_cell_from_behaviour_only = true. Without an NPS answer attitude is NOT assumed to be
--   positive: true_loyalty and latent_loyalty always need a promoter answer, so those two cells
--   stay evidence-based and every customer still gets one of the 4 cells. Frequent buyers of
--   unknown attitude land in spurious_loyalty, the cell whose playbook (build attachment, ask for
--   feedback) fits them; filter on is_cell_from_behaviour_only to send them a survey. The flag
--   follows the NPS answer, not has_survey: a customer who only answered CSAT is classified on
--   behaviour alone.
--
-- loyalty_stage, first matching rule wins:
--   'prospect'          no completed order on or before as_of_date
--   'lapsed'            is_lapsed (overrides every buyer stage below)
--   'advocate'          'loyal' and nps_category = 'promoter'
--   'loyal'             >= loyal_min_orders completed orders in the RFM window (and not lapsed)
--   'repeat_buyer'      >= 2 completed orders on or before as_of_date (lifetime, not just window)
--   'first_time_buyer'  exactly 1 completed order on or before as_of_date

with

settings as (

    select
        cast(getvariable('as_of_date') as date) as as_of_date,
        cast(getvariable('lapsed_after_days') as integer) as lapsed_after_days,
        cast(coalesce(getvariable('loyal_min_orders'), 4) as integer) as loyal_min_orders

),

customers as (

    select * from customers

),

customer_order_stats as (

    -- lifetime_orders: completed orders on or before as_of_date
    select * from customer_order_stats

),

survey_responses as (

    select * from survey_responses

),

rfm_scores as (

    select * from rfm_scores

),

survey_summary as (

    select
        survey_responses.customer_id,
        count(distinct survey_responses.response_key) as response_count,
        first(
            survey_responses.nps
            order by survey_responses.submitted_at desc, survey_responses.response_key desc
        ) filter (where survey_responses.nps is not null) as latest_nps,
        first(
            survey_responses.csat
            order by survey_responses.submitted_at desc, survey_responses.response_key desc
        ) filter (where survey_responses.csat is not null) as latest_csat

    from survey_responses
    cross join settings
    where
        survey_responses.customer_id is not null
        and cast(survey_responses.submitted_at as date) <= settings.as_of_date
    group by survey_responses.customer_id

),

joined as (

    select
        customers.customer_id,
        rfm_scores.rfm_segment,
        rfm_scores.frequency as window_orders,
        rfm_scores.recency_days,
        coalesce(customer_order_stats.lifetime_orders, 0) as lifetime_orders,
        coalesce(survey_summary.response_count, 0) as response_count,
        survey_summary.latest_nps,
        survey_summary.latest_csat,
        case
            when survey_summary.latest_nps between 9 and 10 then 'promoter'
            when survey_summary.latest_nps between 7 and 8 then 'passive'
            when survey_summary.latest_nps between 0 and 6 then 'detractor'
        end as nps_category,
        settings.lapsed_after_days,
        settings.loyal_min_orders

    from customers
    cross join settings
    left join rfm_scores on customers.customer_id = rfm_scores.customer_id
    left join customer_order_stats on customers.customer_id = customer_order_stats.customer_id
    left join survey_summary on customers.customer_id = survey_summary.customer_id

),

flagged as (

    select
        *,
        response_count > 0 as has_survey,
        coalesce(window_orders, 0) >= 2 as is_repeat_buyer,
        case
            when window_orders is not null then recency_days > lapsed_after_days
            else lifetime_orders > 0
        end as is_lapsed

    from joined

),

classified as (

    select
        *,
        case when is_repeat_buyer and not is_lapsed then 'high' else 'low' end
            as behavioural_loyalty,
        nps_category is null as is_cell_from_behaviour_only,
        coalesce(window_orders, 0) >= loyal_min_orders and not is_lapsed as is_loyal

    from flagged

),

final as (

    select
        -- ids
        customer_id,

        -- rfm
        rfm_segment,

        -- survey
        cast(response_count as integer) as response_count,
        cast(latest_nps as integer) as latest_nps,
        cast(latest_csat as integer) as latest_csat,
        nps_category,
        has_survey,

        -- behaviour
        is_repeat_buyer,
        is_lapsed,
        behavioural_loyalty,

        -- loyalty
        case
            when behavioural_loyalty = 'high' and nps_category = 'promoter' then 'true_loyalty'
            when behavioural_loyalty = 'high' then 'spurious_loyalty'
            when nps_category = 'promoter' then 'latent_loyalty'
            else 'no_loyalty'
        end as loyalty_cell,
        is_cell_from_behaviour_only,
        case
            when lifetime_orders = 0 then 'prospect'
            when is_lapsed then 'lapsed'
            when is_loyal and nps_category = 'promoter' then 'advocate'
            when is_loyal then 'loyal'
            when lifetime_orders >= 2 then 'repeat_buyer'
            else 'first_time_buyer'
        end as loyalty_stage

    from classified

)

select * from final
