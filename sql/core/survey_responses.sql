-- Survey responses with their resolved respondent (NULL when the respondent is unknown).
with stg_survey_responses as (
    select * from stg_survey_responses
),

customer_xref as (
    select * from customer_xref where record_kind = 'survey'
),

final as (
    select
        -- ids
        r.response_key,
        r.response_id,
        r.source,
        xref.customer_id,
        -- numerics
        r.nps,
        r.csat,
        -- strings
        r.comment,
        -- timestamps
        r.submitted_at
    from stg_survey_responses as r
    left join customer_xref as xref
        on xref.source = r.source
        and xref.source_record_id = r.response_id
)

select * from final
