-- rfm_scores rows that break the score contract: a score outside 1-5 (or NULL), frequency < 1,
-- rfm_cell not equal to r || f || m, no segment from rfm_segment_map, a last order after
-- as_of_date or before the first one, or a recency_days that does not match last_order_on.

with

rfm_scores as (

    select * from rfm_scores

)

select *
from rfm_scores
where
    not coalesce(r_score between 1 and 5, false)
    or not coalesce(f_score between 1 and 5, false)
    or not coalesce(m_score between 1 and 5, false)
    or not coalesce(fm_score between 1 and 5, false)
    or not coalesce(frequency >= 1, false)
    or rfm_cell is distinct from concat(r_score, f_score, m_score)
    or rfm_segment is null
    or last_order_on > cast(getvariable('as_of_date') as date)
    or first_order_on > last_order_on
    or recency_days is distinct from
        date_diff('day', last_order_on, cast(getvariable('as_of_date') as date))
