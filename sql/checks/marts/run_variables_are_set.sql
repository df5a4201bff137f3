-- The marts read their run-time parameters from DuckDB variables set by the pipeline; a missing
-- one would silently empty the RFM window. Returns the name of every variable that is not set.

with

variables as (

    select * from (
        values
            ('as_of_date', getvariable('as_of_date') is null),
            ('rfm_window_months', getvariable('rfm_window_months') is null),
            ('lapsed_after_days', getvariable('lapsed_after_days') is null)
    ) as v (variable_name, is_missing)

)

select variable_name
from variables
where is_missing
