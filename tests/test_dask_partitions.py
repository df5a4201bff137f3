"""Partitioned pair comparison (`ccv.identity.partitions`): the split changes nothing but speed.

On dirty benchmark records (`benchmarks/identity_data.py`, 3,000 records): whatever the number
of partitions, the levels and term frequencies put back together are `compare`'s own, row for
row; the pairs of one block stay in one partition; each partition carries only the records its
pairs name; and probabilistic matching gives the same links through any mapper.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccv.config import ConfigError, IdentityConfig, ScaleConfig, parse_config
from ccv.identity.blocking import DEFAULT_RULES, block_keys, candidate_pairs
from ccv.identity.comparisons import compare
from ccv.identity.matching import probabilistic_links
from ccv.identity.partitions import Mapper, compare_pairs, partition_of_pairs, split_pairs
from ccv.identity.resolve import standardize
from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    """Standardised dirty customer records with a `record_idx` that is not their position."""
    module = load_benchmark("identity_data")
    raw, _ = module.generate(3000, "medium", seed=3)
    raw = raw.rename(columns={"record_id": "source_record_id"}).assign(
        record_kind="customer", ref_source=None, ref_record_id=None
    )
    births = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    for source, fmt in {"crm_a": "%Y-%m-%d", "crm_b": "%d/%m/%Y", "crm_c": "%d-%b-%Y"}.items():
        rows = raw["source"] == source
        births[rows] = pd.to_datetime(raw.loc[rows, "birth_date"], format=fmt, errors="coerce")
    raw["birth_date"] = births.dt.strftime("%Y-%m-%d")
    std = standardize(raw, IdentityConfig())
    return std.assign(record_idx=np.arange(len(std), dtype=np.int64) * 3 + 7)


@pytest.fixture(scope="module")
def pairs(records) -> pd.DataFrame:
    found, _ = candidate_pairs(records, DEFAULT_RULES, 50)
    assert len(found) > 1000
    return found


@pytest.mark.parametrize("partitions", [2, 5, 16])
def test_partitioned_comparison_equals_one_compare_call(records, pairs, partitions):
    calls = []

    def recording_map(fn, items):
        calls.append(len(items))
        return [fn(item) for item in reversed(items)][::-1]

    levels = compare_pairs(records, pairs, Mapper(partitions, recording_map))
    pd.testing.assert_frame_equal(levels, compare(records, pairs))
    assert calls == [partitions]  # every partition non-empty at this size, one map call
    assert levels.filter(like="_level").ne(-1).any().all()  # every comparison found evidence


def test_pairs_of_one_block_share_a_partition(records, pairs):
    part = partition_of_pairs(records, pairs, 7)
    assert set(np.unique(part)) == set(range(7))
    first = pairs["rules"].astype(str).str.split("+").str[0]
    positions = pd.Index(records["record_idx"]).get_indexer(pairs["left"])
    for bit, rule in enumerate(DEFAULT_RULES[:4]):
        codes, _ = block_keys(records, rule)
        chosen = (first == rule.name).to_numpy()
        frame = pd.DataFrame({"block": codes[positions[chosen]], "part": part[chosen]})
        assert len(frame), bit
        assert (frame.groupby("block")["part"].nunique() == 1).all()


def test_a_partition_carries_only_the_records_its_pairs_name(records, pairs):
    items, rows = split_pairs(records, pairs, 4)
    assert sum(len(r) for r in rows) == len(pairs)
    for item in items:
        named = set(item.pairs["left"]) | set(item.pairs["right"])
        assert set(item.records["record_idx"]) == named
        assert len(item.records) < len(records)
        assert all(c == "record_idx" or c.startswith("std_") for c in item.records.columns)


def test_matching_gives_the_same_links_through_any_mapper(records):
    positions = np.arange(len(records))
    std = records.drop(columns="record_idx")
    local = probabilistic_links(std, positions, 0.9, 50, min_records_to_estimate=1000)
    split = probabilistic_links(
        std, positions, 0.9, 50, min_records_to_estimate=1000, mapper=Mapper(6)
    )
    assert len(local.links) > 100
    pd.testing.assert_frame_equal(split.links, local.links)
    assert split.params.to_json() == local.params.to_json()


def test_scale_config_is_validated(tmp_path):
    assert ScaleConfig().task_runner == "local"
    sources = [
        {
            "name": "crm",
            "kind": "customers",
            "path": "c.csv",
            "format": "csv",
            "columns": {"source_record_id": "id"},
        }
    ]
    ok = parse_config(
        {"sources": sources, "scale": {"task_runner": "dask", "dask_address": "tcp://h:8786"}},
        tmp_path,
    )
    assert ok.scale.dask_address == "tcp://h:8786"
    bad = [
        ({"task_runner": "spark"}, "scale.task_runner"),
        ({"dask_address": "tcp://h:8786"}, "dask_address: only used with task_runner"),
        ({"task_runner": "dask", "partitions": 0}, "scale.partitions"),
        ({"dask_workers": 0}, "scale.dask_workers"),
    ]
    for scale, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config({"sources": sources, "scale": scale}, tmp_path)
