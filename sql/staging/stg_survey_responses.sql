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
        -- the identity record of the identifiers (ccv.identity.resolve: one per source and
        -- identifier tuple); NULL without any identifier (an anonymous transaction)
        case when coalesce(email, phone, loyalty_id, customer_record_id) is not null
            then '~' || md5(concat_ws('|', coalesce(lower(trim(email)), ''),
                coalesce(trim(phone), ''), coalesce(trim(loyalty_id), ''),
                coalesce(customer_record_id, '')))
        end as record_key,
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
