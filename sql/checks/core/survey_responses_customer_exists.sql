-- Every attributed survey response points at an existing customer.
select r.response_key, r.customer_id
from survey_responses as r
left join customers as c using (customer_id)
where r.customer_id is not null and c.customer_id is null
