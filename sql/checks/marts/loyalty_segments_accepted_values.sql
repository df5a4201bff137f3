-- loyalty_segments rows with a value outside its documented set, a NULL flag, or an nps_category
-- that does not follow latest_nps (9-10 promoter, 7-8 passive, 0-6 detractor).

with

loyalty_segments as (

    select * from loyalty_segments

)

select *
from loyalty_segments
where
    loyalty_cell is null
    or loyalty_cell not in ('true_loyalty', 'latent_loyalty', 'spurious_loyalty', 'no_loyalty')
    or loyalty_stage is null
    or loyalty_stage not in (
        'prospect', 'first_time_buyer', 'repeat_buyer', 'loyal', 'advocate', 'lapsed'
    )
    or behavioural_loyalty is null
    or behavioural_loyalty not in ('high', 'low')
    or has_survey is null
    or is_repeat_buyer is null
    or is_lapsed is null
    or is_cell_from_behaviour_only is null
    or is_cell_from_behaviour_only is distinct from (nps_category is null)
    or nps_category is distinct from case
        when latest_nps between 9 and 10 then 'promoter'
        when latest_nps between 7 and 8 then 'passive'
        when latest_nps between 0 and 6 then 'detractor'
    end
    or response_count is null
    or response_count < 0
    or has_survey is distinct from (response_count > 0)
