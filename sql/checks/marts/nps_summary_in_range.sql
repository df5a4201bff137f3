-- nps_summary must be exactly one row whose counts add up and whose score lies in -100..100
-- (NULL only without responses). Returns the offending row(s), or one row if the table is empty.

with

nps_summary as (

    select * from nps_summary

),

row_count as (

    select count(*) as summary_rows from nps_summary

)

select row_count.summary_rows, nps_summary.*

from row_count
left join nps_summary on true
where
    row_count.summary_rows <> 1
    or nps_summary.responses <> nps_summary.promoters + nps_summary.passives
        + nps_summary.detractors
    or nps_summary.respondents > nps_summary.responses
    or (nps_summary.nps is null) is distinct from (nps_summary.responses = 0)
    or not coalesce(nps_summary.nps between -100 and 100, true)
    or nps_summary.as_of_date is distinct from cast(getvariable('as_of_date') as date)
