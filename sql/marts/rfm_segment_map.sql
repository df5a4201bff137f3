-- rfm_segment_map: the named RFM segment of every (r_score, fm_score) cell, kept as data so it can
-- be read by analysts and later overridden from config. One row per cell, 5 x 5 = 25 rows; the
-- check sql/checks/marts/rfm_segment_map_complete.sql makes sure no cell is missing or doubled.
--
-- fm_score = floor((f_score + m_score) / 2), i.e. the average of F and M rounded DOWN, so a cell
-- is only earned when frequency and spend earn it together (F=5, M=4 -> 4; F=1, M=2 -> 1).
--
-- The grid is the widely used "R vs. average of F and M" map (rows: R, columns: FM; 5 = best):
--
-- R\FM  1               2                    3                    4                5
-- ----  --------------  -------------------  -------------------  ---------------  ---------------
-- 5     New Customers   Potential Loyalists  Potential Loyalists  Champions        Champions
-- 4     Promising       Potential Loyalists  Potential Loyalists  Loyal Customers  Loyal Customers
-- 3     About to Sleep  About to Sleep       Need Attention       Loyal Customers  Loyal Customers
-- 2     Hibernating     Hibernating          At Risk              At Risk          Can't Lose Them
-- 1     Lost            Lost                 At Risk              At Risk          Can't Lose Them
--
-- In words: Champions R 5 & FM 4-5; Loyal Customers R 3-4 & FM 4-5; Potential Loyalists R 4-5 &
-- FM 2-3; New Customers R 5 & FM 1; Promising R 4 & FM 1; Need Attention R 3 & FM 3; About to
-- Sleep R 3 & FM 1-2; At Risk R 1-2 & FM 3-4; Can't Lose Them R 1-2 & FM 5; Hibernating R 2 &
-- FM 1-2; Lost R 1 & FM 1-2.

with segment_map as (

    select * from (
        values
            (5, 1, 'New Customers'),
            (5, 2, 'Potential Loyalists'),
            (5, 3, 'Potential Loyalists'),
            (5, 4, 'Champions'),
            (5, 5, 'Champions'),
            (4, 1, 'Promising'),
            (4, 2, 'Potential Loyalists'),
            (4, 3, 'Potential Loyalists'),
            (4, 4, 'Loyal Customers'),
            (4, 5, 'Loyal Customers'),
            (3, 1, 'About to Sleep'),
            (3, 2, 'About to Sleep'),
            (3, 3, 'Need Attention'),
            (3, 4, 'Loyal Customers'),
            (3, 5, 'Loyal Customers'),
            (2, 1, 'Hibernating'),
            (2, 2, 'Hibernating'),
            (2, 3, 'At Risk'),
            (2, 4, 'At Risk'),
            (2, 5, 'Can''t Lose Them'),
            (1, 1, 'Lost'),
            (1, 2, 'Lost'),
            (1, 3, 'At Risk'),
            (1, 4, 'At Risk'),
            (1, 5, 'Can''t Lose Them')
    ) as cells (r_score, fm_score, rfm_segment)

),

final as (

    select
        -- scores
        cast(r_score as integer) as r_score,
        cast(fm_score as integer) as fm_score,

        -- segment
        cast(rfm_segment as varchar) as rfm_segment

    from segment_map

)

select * from final
