"""The night's standardised records (`incremental.refresh_records`) are what standardising every
record from scratch gives, whichever records were stored on an earlier night.

Why: new and changed records are standardised into Arrow and written to ``identity_std`` once,
complete, while unchanged ones are read back from it; the two are merged in key order. A night
that mixes both must give the frame (values, dtypes, order) and the stored state of a night that
standardised everything.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt

from ccv.config import IdentityConfig
from ccv.identity import incremental
from ccv.identity.blocking import DEFAULT_RULES, factorize, key_values
from ccv.identity.incremental import block_key_hashes, refresh_records, rule_column
from ccv.identity.resolve import blank_default_dates, standardize_rows

RECORDS = """
    create or replace table records as
    select i, case when i % 4 = 0 then 'order' else 'customer' end as record_kind,
           'src' || (i % 2) as source, 'r' || lpad(i::varchar, 3, '0') as source_record_id,
           case when i % 4 <> 0 then ['Ann', 'Bob', 'Cy', null][i % 4 + 1] end as first_name,
           case when i % 4 <> 0 then ['Lee', 'O''Brien', null, 'Ng'][i % 3 + 1] end
               as last_name,
           case when i % 7 = 0 then 'Dr Jo March' end as full_name,
           'p' || (i % 9) || '@Example.com' as email,
           case when i % 5 <> 0 then '07911 1234' || lpad((i % 50)::varchar, 2, '0') end
               as phone,
           case when i % 6 = 0 then 'L-' || i end as loyalty_id,
           -- one date held by many records: a system default that blanking removes
           case when i % 3 = 0 then date '1900-01-01'
                when i % 3 = 1 then date '1970-01-01' + (i % 40)::integer end as birth_date,
           'sw1a ' || (i % 3) || 'aa' as postcode, 'London' as city, 'GB' as country,
           case when i % 8 = 0 then 'GB' end as phone_region,
           timestamp '2025-01-01' + i * interval 1 hour as observed_at,
           null::varchar as ref_source, null::varchar as ref_record_id, 1::bigint as transactions,
           timestamp '2024-01-01' as first_observed_at
    from range(120) t(i)
"""
IDENTITY = IdentityConfig()


def night(con: duckdb.DuckDBPyConnection, where: str) -> incremental.RecordState:
    return refresh_records(
        con,
        f"select * exclude (i) from records where {where}",
        lambda records: standardize_rows(records, IDENTITY),
        blank_default_dates,
    )


def stored(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """identity_std by record key (record numbers differ between histories)."""
    return (
        con.execute("select * exclude (record_no) from identity_std order by all")
        .df()
        .reset_index(drop=True)
    )


def test_a_night_of_stored_and_fresh_records_equals_standardising_all(monkeypatch):
    monkeypatch.setattr(incremental, "RECORDS_CHUNK", 7)  # many chunks and ranges
    full = duckdb.connect()
    full.execute(RECORDS)
    everything = night(full, "true")
    assert everything.standardised == 120 and everything.dirty.all()

    nights = duckdb.connect()
    nights.execute(RECORDS)
    night(nights, "i % 3 <> 2")  # a first night with two thirds of the records
    nights.execute("update records set email = 'new@example.org' where i = 4")  # changed
    second = night(nights, "true")
    assert second.standardised == 40 + 1 and second.removed == 1

    by_key = second.std.set_index("source_record_id")
    assert by_key.loc["r004", "std_email"] == "new@example.org"
    assert by_key.loc["r005", "std_email"] == "p5@example.com"
    # the stored state is the full night's too (blanking flags and block keys included)
    nights.execute("update records set email = 'p4@Example.com' where i = 4")
    third = night(nights, "true")
    assert third.standardised == 1
    columns = [c for c in everything.std.columns if c != "record_no"]
    pdt.assert_frame_equal(third.std[columns], everything.std[columns])
    pdt.assert_frame_equal(stored(nights), stored(full))
    # the night frame keeps neither the raw fields nor the fingerprints
    assert "fingerprint" not in third.std and "email" not in third.std


def test_block_key_hashes_hash_each_key_part_text():
    """The hashes are pandas' hash of the text ``<part>=<value>`` (categorised or not: the same
    numbers), combined FNV-style over a rule's parts; a stored state depends on them."""
    con = duckdb.connect()
    con.execute(RECORDS)
    records = standardize_rows(con.execute("select * exclude (i) from records").df(), IDENTITY)
    records["std_birth_date"] = blank_default_dates(records["std_birth_date"])
    hashes = block_key_hashes(records, DEFAULT_RULES)
    for rule in DEFAULT_RULES:
        combined = np.zeros(len(records), dtype=np.uint64)
        valid = np.ones(len(records), dtype=bool)
        for part in rule.columns:
            codes, uniques = factorize(key_values(records, part))
            values = uniques.to_pylist() if hasattr(uniques, "to_pylist") else list(uniques)
            text = np.asarray([f"{part}={v}" for v in values], dtype=object)
            hashed = pd.util.hash_array(text, categorize=True)
            valid &= codes >= 0
            with np.errstate(over="ignore"):
                combined = combined * np.uint64(0x100000001B3) ^ hashed[np.maximum(codes, 0)]
        expected = pd.array(combined.view(np.int64), dtype="Int64")
        expected[~valid] = pd.NA
        got = hashes[rule_column(rule)].array
        assert got.isna().sum() < len(records)  # the rule has keys here
        pdt.assert_extension_array_equal(got, expected)


def test_an_ordered_insert_numbers_the_gathered_records_in_key_order():
    # `refresh_records` takes a gathered record's `rowid` as its place in key order: DuckDB keeps
    # the order of an ordered query when it inserts it (on every thread, for more rows than one
    # row group). Should an upgrade of DuckDB break that, this fails before a night goes wrong.
    con = duckdb.connect()
    con.execute("set threads = 2")
    con.execute(
        """
        create temp table _gathered as
        select (['order', 'customer', 'survey'])[1 + (hash(i) % 3)::bigint] as record_kind,
               'src' || hash(i * 7) % 5 as source, md5(i::varchar) as source_record_id
        from range(400000) as t(i)
        order by record_kind, source, source_record_id
        """
    )
    ((out_of_order,),) = con.execute(
        """
        select count(*) from (
            select rowid, row_number() over (
                order by record_kind, source, source_record_id) - 1 as place
            from _gathered
        ) where rowid <> place
        """
    ).fetchall()
    assert out_of_order == 0
