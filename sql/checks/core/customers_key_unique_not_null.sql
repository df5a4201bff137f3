-- customer_id is the primary key of customers.
select customer_id, count(*) as n
from customers
group by customer_id
having customer_id is null or count(*) > 1
