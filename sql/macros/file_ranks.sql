-- Every file delivered (ingest_log keeps every file), numbered in natural order
-- (sql/macros/file_key.sql; files whose keys tie, crm_1.csv and crm_01.csv, by name; the same
-- name in two sources by source): 1 for the first. One numbering over all sources, so ranks
-- compare as the names do wherever deliveries of two sources meet (an order's lines from a
-- lines file and from nested order lines). A model orders a record's deliveries by their
-- file's rank, joined on (source, source_file), instead of computing the key for each of
-- millions of rows.
create or replace macro file_ranks() as table
    select
        source,
        source_file,
        row_number() over (order by file_key(source_file), source_file, source) as file_rank
    from (select distinct source, source_file from ingest_log)
