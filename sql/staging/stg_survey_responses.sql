-- One row per survey response, typed.
with raw_survey_responses as (
    select * from raw_survey_responses
),

ranked as (
    select
        *,
        row_number() over (
            partition by source, response_id
            order by loaded_at desc, source_file desc, row_number desc
        ) as version_rank
    from raw_survey_responses
),

final as (
    select
        -- ids
        source || ':' || response_id as response_key,
        response_id,
        source,
        customer_record_id,
        loyalty_id,
        -- the identity record of the identifiers (sql/macros/identity_record_key.sql)
        identity_record_key(email, phone, loyalty_id, customer_record_id) as record_key,
        -- strings
        lower(email) as email,
        phone,
        comment,
        -- numerics
        nps,
        csat,
        -- timestamps
        submitted_at,
        -- lineage
        source_file,
        row_number
    from ranked
    where version_rank = 1
)

select * from final
