-- nps_summary: the company-level Net Promoter Score of this run, one row.
--
-- Responses counted: every survey response with an NPS answer submitted in the 12 months up to
-- the as-of day, i.e. cast(submitted_at as date) in (as_of_date - 12 months, as_of_date] (the
-- same half-open convention as the RFM window). Every response counts once, including responses
-- whose respondent is unknown (customer_id NULL) and repeat answers of one customer: this is the
-- NPS of the answers the company received, not of its customer base.
--
--   responses        responses with an NPS answer in the window
--   respondents      distinct known customers among them
--   promoters        nps 9-10;  passives 7-8;  detractors 0-6
--   pct_promoters / pct_detractors   share of responses, in percent (1 decimal)
--   nps              100 * (promoters - detractors) / responses, rounded to 1 decimal, from -100
--                    to 100; NULL when there is no response in the window

with

settings as (

    select
        cast(getvariable('as_of_date') as date) as as_of_date,
        cast(cast(getvariable('as_of_date') as date) - to_months(12) as date) as window_start_on

),

survey_responses as (

    select * from survey_responses

),

window_responses as (

    select survey_responses.*

    from survey_responses
    cross join settings
    where
        survey_responses.nps is not null
        and cast(survey_responses.submitted_at as date) > settings.window_start_on
        and cast(survey_responses.submitted_at as date) <= settings.as_of_date

),

counted as (

    select
        count(*) as responses,
        count(distinct customer_id) as respondents,
        count(*) filter (where nps >= 9) as promoters,
        count(*) filter (where nps between 7 and 8) as passives,
        count(*) filter (where nps <= 6) as detractors

    from window_responses

),

final as (

    select
        -- run
        settings.as_of_date,
        cast(settings.window_start_on + 1 as date) as responses_from,
        settings.as_of_date as responses_to,

        -- counts
        cast(counted.responses as integer) as responses,
        cast(counted.respondents as integer) as respondents,
        cast(counted.promoters as integer) as promoters,
        cast(counted.passives as integer) as passives,
        cast(counted.detractors as integer) as detractors,

        -- score
        cast(round(100.0 * counted.promoters / nullif(counted.responses, 0), 1) as double)
            as pct_promoters,
        cast(round(100.0 * counted.detractors / nullif(counted.responses, 0), 1) as double)
            as pct_detractors,
        cast(
            round(
                100.0 * (counted.promoters - counted.detractors) / nullif(counted.responses, 0), 1
            ) as double
        ) as nps

    from settings
    cross join counted

)

select * from final
