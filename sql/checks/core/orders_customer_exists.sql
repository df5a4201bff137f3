-- Every attributed order points at an existing customer.
select o.order_key, o.customer_id
from orders as o
left join customers as c using (customer_id)
where o.customer_id is not null and c.customer_id is null
