-- customer_value rows that break its contract: model inputs inconsistent with each other,
-- predictions out of range (probability outside 0-1, negative or non-monotone expected
-- purchases, negative spend or clv), predictions for a customer without a purchase, or flags
-- that do not match the predictions.

with

customer_value as (

    select * from customer_value

)

select *
from customer_value
where
    purchase_days is null
    or purchase_days < 0
    or model_fitted is null
    or spend_model_fitted is null
    -- inputs
    or (purchase_days = 0 and coalesce(
        cast(first_purchase_on as varchar),
        cast(repeat_purchase_days as varchar),
        cast(first_to_last_purchase_days as varchar),
        cast(first_purchase_to_as_of_days as varchar),
        cast(avg_repeat_purchase_value as varchar)
    ) is not null)
    or (purchase_days > 0 and (
        repeat_purchase_days is distinct from purchase_days - 1
        or first_to_last_purchase_days < 0
        or first_to_last_purchase_days > first_purchase_to_as_of_days
        or (repeat_purchase_days > 0) is distinct from (first_to_last_purchase_days > 0)
    ))
    -- predictions exist exactly for buyers of a fitted model
    or (model_fitted and purchase_days = 0)
    or (spend_model_fitted and purchase_days = 0)
    or (probability_alive is not null) is distinct from model_fitted
    or (expected_avg_order_value is not null) is distinct from spend_model_fitted
    or (clv is not null) is distinct from (model_fitted and spend_model_fitted)
    -- ranges
    or not coalesce(probability_alive between 0 and 1, true)
    or expected_purchases_90d < 0
    or expected_purchases_180d < expected_purchases_90d
    or expected_purchases_365d < expected_purchases_180d
    or expected_avg_order_value < 0
    or clv < 0
