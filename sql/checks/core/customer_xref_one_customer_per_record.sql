-- A source record belongs to exactly one customer (no record in two clusters).
-- Only records the run wrote a row for can break it: on an incremental night customer_xref is
-- written by key (src/ccv/identity/keyed_writes.py), and the rows it kept passed this check when
-- the version holding them was published. With the variable `run_id` unset (a build outside a
-- nightly run) every record is checked, as on a full night, where every row is the run's own.
-- Offending records are found with plain counts (cheap at millions of xref rows); only they are
-- joined back to say how many distinct customers claim them.
with written as (
    select distinct source, source_record_id
    from customer_xref
    where getvariable('run_id') is null or run_id = getvariable('run_id')
),

offending as (
    select source, source_record_id, count(*) as xref_rows
    from customer_xref
    semi join written using (source, source_record_id)
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
