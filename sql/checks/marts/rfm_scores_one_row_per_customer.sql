-- rfm_scores customer_ids that are NULL, appear more than once, or are not in customers.

with

customers as (

    select customer_id from customers

),

rfm_scores as (

    select customer_id from rfm_scores

)

select customer_id, count(*) as rfm_scores_rows
from rfm_scores
group by customer_id
having
    customer_id is null
    or count(*) > 1
    or customer_id not in (select customer_id from customers where customer_id is not null)
