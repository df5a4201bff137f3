-- A source record belongs to exactly one customer (no record in two clusters).
-- Offending records are found with plain counts (cheap at millions of xref rows); only they are
-- joined back to say how many distinct customers claim them.
with offending as (
    select source, source_record_id, count(*) as xref_rows
    from customer_xref
    group by source, source_record_id
    having count(*) > 1 or count(customer_id) = 0
)

select
    offending.source,
    offending.source_record_id,
    count(distinct customer_xref.customer_id) as customers,
    offending.xref_rows
from offending
inner join customer_xref
    on customer_xref.source = offending.source
    and customer_xref.source_record_id = offending.source_record_id
group by offending.source, offending.source_record_id, offending.xref_rows
