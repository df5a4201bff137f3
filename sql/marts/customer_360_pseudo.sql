-- customer_360_pseudo: customer_360 for analysts who need behaviour, not identities.
--
-- One row per customer_360 row, without direct identifiers:
--   dropped     customer_id, loyalty_id, first_name, last_name, full_name, email, phone,
--               address_line, city, postcode (kept coarsened below), birth_date (kept as year)
--   pseudo_id   sha256(pseudonym_key || ':' || customer_id): stable from run to run, but not
--               computable without the key (customer_id itself derives from source record
--               keys, so a plain hash of it could be re-identified). The key is the DuckDB
--               variable pseudonym_key (see src/ccv/privacy/pseudonym.py); without it the
--               public constant 'ccv-unkeyed' is used, which is not pseudonymisation.
--   postcode_outward  UK outward code ('SW1A' of 'SW1A 1AA'); NULL for other shapes
--   birth_year        year of birth_date
-- Columns are removed with EXCLUDE so analytic columns added to customer_360 flow through;
-- a column that could identify someone must be added to the EXCLUDE list, and the check
-- sql/checks/marts/customer_360_pseudo_no_direct_identifiers.sql fails the build if a column
-- named like an identifier slips through.

with

settings as (

    select coalesce(getvariable('pseudonym_key'), 'ccv-unkeyed') as pseudonym_key

),

customer_360 as (

    select * from customer_360

),

pseudonymised as (

    select
        sha256(settings.pseudonym_key || ':' || customer_360.customer_id) as pseudo_id,
        case
            when regexp_full_match(
                upper(trim(customer_360.postcode)), '[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}'
            )
                then regexp_extract(
                    upper(trim(customer_360.postcode)), '^([A-Z]{1,2}[0-9][A-Z0-9]?)', 1
                )
        end as postcode_outward,
        year(customer_360.birth_date) as birth_year,
        customer_360.* exclude (
            customer_id,
            loyalty_id,
            first_name,
            last_name,
            full_name,
            birth_date,
            email,
            phone,
            address_line,
            city,
            postcode
        )

    from customer_360
    cross join settings

),

final as (

    select * from pseudonymised

)

select * from final
