-- A file's name as it sorts in *natural order*: every run of digits left-padded with zeros to
-- 20 places, so numbered drops sort by number (crm_9.csv before crm_10.csv) and dated ones by
-- date, padded or not. Which delivery of a record is later follows this order within a run
-- (its files share one loaded_at; across runs the later load is); a snapshot source's latest
-- export is its last file in this order. src/ccv/ingest/file_names.py `file_key` computes
-- the same key in Python (the order a run loads its files in); tests/test_ingest.py checks
-- both agree.
-- Per file, not per row: models rank the files once (sql/macros/file_ranks.sql).
create or replace macro file_key(name) as
    array_to_string(
        list_transform(
            regexp_extract_all(name, '[0-9]+|[^0-9]+'),
            lambda part: case
                when regexp_full_match(part, '[0-9]+')
                    then lpad(part, greatest(20, length(part))::integer, '0')
                else part
            end
        ),
        ''
    )
