-- (order_key, line_number) is the key of order_lines.
select order_key, line_number, count(*) as n
from order_lines
group by order_key, line_number
having order_key is null or line_number is null or count(*) > 1
