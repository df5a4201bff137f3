-- rfm_segment_map must name exactly one segment for each of the 25 (r_score, fm_score) cells of
-- the 5 x 5 grid: returns missing, doubled, out-of-grid and unnamed cells.

with

rfm_segment_map as (

    select * from rfm_segment_map

),

grid as (

    select
        cast(r.r_score as integer) as r_score,
        cast(fm.fm_score as integer) as fm_score

    from range(1, 6) as r (r_score)
    cross join range(1, 6) as fm (fm_score)

),

cells as (

    select
        r_score,
        fm_score,
        count(*) as map_rows,
        count(rfm_segment) as named_rows

    from rfm_segment_map
    group by r_score, fm_score

)

select
    coalesce(grid.r_score, cells.r_score) as r_score,
    coalesce(grid.fm_score, cells.fm_score) as fm_score,
    coalesce(cells.map_rows, 0) as map_rows,
    coalesce(cells.named_rows, 0) as named_rows

from grid
full outer join cells
    on grid.r_score = cells.r_score
    and grid.fm_score = cells.fm_score
where
    grid.r_score is null
    or cells.map_rows is distinct from 1
    or cells.named_rows is distinct from 1
