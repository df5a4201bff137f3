-- Every order line belongs to an order that was loaded.
select l.order_key, l.line_number
from order_lines as l
left join orders as o using (order_key)
where o.order_key is null
