-- A source record belongs to exactly one customer (no record in two clusters).
select source, source_record_id, count(distinct customer_id) as customers
from customer_xref
group by source, source_record_id
having count(*) > 1 or count(customer_id) = 0
