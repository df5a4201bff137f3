-- What a CRM record's delivered row says, as one 64-bit hash: every column of raw_customers but
-- its lineage (run_id, source, source_file, row_number, loaded_at). Two deliveries of a record
-- with the same hash are the same version of it: staging names such a version's first delivery
-- (sql/staging/stg_customers.sql), a night updates stg_customers only for records delivered
-- with another version (sql/touched/stg_customers.sql), and pruning keeps each version's first
-- delivery (src/ccv/ingest/snapshots.py). `r` is a row of raw_customers (its table name).
-- tests/test_staging.py checks that every delivered column is named here.
create or replace macro crm_version(r) as
    hash(
        r.source_record_id, r.first_name, r.last_name, r.full_name, r.email, r.phone,
        r.birth_date, r.gender, r.address_line, r.city, r.postcode, r.region, r.country,
        r.loyalty_id, r.created_at, r.updated_at, r.email_opt_in, r.sms_opt_in, r.phone_region,
        r.extra
    )
