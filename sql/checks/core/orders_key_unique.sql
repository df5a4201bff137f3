-- order_key is the primary key of orders.
select order_key, count(*) as n
from orders
group by order_key
having order_key is null or count(*) > 1
