-- customer_360_pseudo must not carry a column named like a direct identifier (a new contact or
-- name column in customer_360 flows through the model's EXCLUDE list unless added to it);
-- the consent flags email_opt_in / sms_opt_in are not identifiers and are allowed.
with pseudo_columns as (
    select column_name
    from duckdb_columns()
    where table_name = 'customer_360_pseudo' and database_name = current_database()
),

final as (
    select column_name
    from pseudo_columns
    where regexp_matches(
        lower(column_name),
        '(^|_)(customer_id|loyalty_id|name|first_name|last_name|full_name|email|phone|mobile'
        || '|address|address_line|street|birth_date|dob|postcode|zip|ip)($|_)'
    )
    and column_name not in ('postcode_outward', 'email_opt_in', 'sms_opt_in')
)

select * from final
