-- What a CRM record's delivered row says in its mapped columns, as one 64-bit hash: every
-- column `crm_version` hashes (sql/macros/crm_version.sql) but `extra`, the source's unmapped
-- columns. Two deliveries of a record with the same crm_fields and another crm_version differ
-- only in their unmapped columns: when most records of a re-delivered export do, one of those
-- columns changes with every export (an export time, a counter), and the run report names it
-- (src/ccv/reporting/sections.py, snapshot exports). tests/test_staging.py checks that this
-- names what crm_version names but `extra`.
create or replace macro crm_fields(r) as
    hash(
        r.source_record_id, r.first_name, r.last_name, r.full_name, r.email, r.phone,
        r.birth_date, r.gender, r.address_line, r.city, r.postcode, r.region, r.country,
        r.loyalty_id, r.created_at, r.updated_at, r.email_opt_in, r.sms_opt_in, r.phone_region
    )
