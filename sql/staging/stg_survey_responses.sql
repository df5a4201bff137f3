-- One row per survey response, typed.
with raw_survey_responses as (
    select * from raw_survey_responses
),

files as (
    select * from file_ranks()
),

-- a run's files share one loaded_at: between them, the later file in natural order
-- (sql/macros/file_ranks.sql) is the later delivery
ranked as (
    select
        r.*,
        row_number() over (
            partition by r.source, r.response_id
            order by r.loaded_at desc, f.file_rank desc, r.row_number desc
        ) as version_rank
    from raw_survey_responses as r
    inner join files as f using (source, source_file)
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
