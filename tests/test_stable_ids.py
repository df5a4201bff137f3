"""Stable customer ids across runs: merge keeps the oldest, split keeps the largest part."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from ccv.identity.stable_ids import _anchors, _mint_unused, assign_ids, mint_ids
from ccv.identity.store import ensure_identity_tables, record_assignment


def clusters(**groups: list[str]) -> pd.DataFrame:
    """`a=["r1", "r2"]` → records r1, r2 in cluster "a"."""
    rows = [(key, name) for name, keys in groups.items() for key in keys]
    return pd.DataFrame(rows, columns=["record_key", "cluster"])


def crosswalk(**ids: list[str]) -> pd.DataFrame:
    rows = [(key, cid) for cid, keys in ids.items() for key in keys]
    return pd.DataFrame(rows, columns=["record_key", "customer_id"])


def registry(*ids_oldest_first: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(ids_oldest_first),
            "created_run_id": [f"2026010{i}T000000" for i in range(len(ids_oldest_first))],
        }
    )


def id_of(result, key: str) -> str:
    return result.ids.set_index("record_key").loc[key, "customer_id"]


def test_rerun_without_changes_keeps_ids_and_records_no_event():
    previous = crosswalk(C1=["r1", "r2"], C2=["r3"])
    result = assign_ids(clusters(x=["r1", "r2"], y=["r3"]), previous, registry("C1", "C2"))
    assert (id_of(result, "r1"), id_of(result, "r3")) == ("C1", "C2")
    assert result.events.empty and result.new_ids.empty


def test_new_record_joins_the_existing_id_of_its_cluster():
    previous = crosswalk(C1=["r1"])
    result = assign_ids(clusters(x=["r1", "r9"]), previous, registry("C1"))
    assert id_of(result, "r9") == "C1"
    assert result.events.empty  # joining an existing customer is not an identity change


def test_merge_keeps_the_oldest_id_and_retires_the_other():
    previous = crosswalk(C_new=["r1"], C_old=["r2"])
    # C_old was created first, so it survives although C_new sorts first alphabetically
    result = assign_ids(clusters(x=["r1", "r2"]), previous, registry("C_old", "C_new"))
    assert id_of(result, "r1") == id_of(result, "r2") == "C_old"
    (event,) = result.events.itertuples()
    assert (event.event_type, event.customer_id, event.other_customer_id) == (
        "merge",
        "C_old",
        "C_new",
    )
    assert result.retired.to_dict("records") == [{"customer_id": "C_new", "merged_into": "C_old"}]


def test_split_leaves_the_id_with_the_largest_part():
    previous = crosswalk(C1=["r1", "r2", "r3"])
    result = assign_ids(clusters(big=["r1", "r2"], small=["r3"]), previous, registry("C1"))
    assert id_of(result, "r1") == "C1"
    new_id = id_of(result, "r3")
    assert new_id != "C1"
    (event,) = result.events.itertuples()
    assert (event.event_type, event.customer_id, event.other_customer_id) == ("split", new_id, "C1")


def test_brand_new_cluster_gets_a_deterministic_new_id():
    first = assign_ids(clusters(x=["src:1"]), crosswalk(), registry())
    again = assign_ids(clusters(x=["src:1"]), crosswalk(), registry())
    assert id_of(first, "src:1") == id_of(again, "src:1")
    assert first.events["event_type"].tolist() == ["new"]


def test_minted_id_never_reuses_a_retired_id():
    first = assign_ids(clusters(x=["src:1"]), crosswalk(), registry())
    retired = id_of(first, "src:1")
    # the same anchor appears again after its id was retired elsewhere: a fresh id is minted
    result = assign_ids(clusters(x=["src:1"]), crosswalk(), registry(retired))
    assert id_of(result, "src:1") != retired


@pytest.mark.parametrize("text", [object, "str"])
def test_ids_minted_against_used_ids_are_those_of_the_whole_set(text):
    """`_mint_unused` looks the few new ids up among every used one instead of making a set
    of them; it must mint what `mint_ids` mints with that set, taken ids salted."""
    anchors = [f"src:{i}" for i in range(50)]
    unsalted = mint_ids(anchors, set())
    others = [f"C{i:016x}" for i in range(1000)]
    for taken in ([], [unsalted[3]], [unsalted[3], unsalted[40]]):
        used = (pd.Series(others + taken[:1], dtype=text), pd.Series(taken[1:], dtype=text))
        minted = _mint_unused(anchors, used)
        assert minted == mint_ids(anchors, {*others, *taken})
        assert [a != b for a, b in zip(minted, unsalted, strict=True)].count(True) == len(taken)


def test_record_moving_between_surviving_customers_is_reported():
    previous = crosswalk(C1=["r1", "r2"], C2=["r3", "r4"])
    result = assign_ids(clusters(x=["r1"], y=["r2", "r3", "r4"]), previous, registry("C1", "C2"))
    assert id_of(result, "r2") == "C2"
    moved = result.events[result.events["event_type"] == "record_moved"]
    assert moved[["record_key", "other_customer_id", "customer_id"]].values.tolist() == [
        ["r2", "C1", "C2"]
    ]


@pytest.mark.parametrize("dtype", [object, "str"])
def test_a_clusters_anchor_is_its_smallest_record_key(dtype):
    """The anchor (tie-breaker of the vote, seed of a minted id) is what pandas' group-by
    minimum gives, for text held as Python objects or Arrow-backed."""
    rng = np.random.default_rng(7)
    keys = [
        f"s{rng.integers(0, 3)}:{'~' if rng.random() < 0.5 else ''}{i * 7919 % 1000:03d}"
        for i in range(2_000)
    ]
    new = pd.DataFrame(
        {"record_key": pd.Series(keys, dtype=dtype), "cluster": rng.integers(0, 300, 2_000)}
    )
    expected = new.groupby("cluster")["record_key"].min()
    got = _anchors(new)
    assert got.index.tolist() == expected.index.tolist()
    assert got.tolist() == expected.tolist()


def test_recorded_events_name_the_moved_record_by_source_and_id():
    """identity_events splits a record key at its first colon (record ids may hold colons);
    events about a whole customer (new, split, merge) name no record."""
    previous = crosswalk(C1=["shop:A:1", "shop:A:2"], C2=["till:7"])
    result = assign_ids(
        clusters(x=["shop:A:1"], y=["shop:A:2", "till:7"], z=["new:9"]),
        previous,
        registry("C1", "C2"),
    )
    con = duckdb.connect()
    ensure_identity_tables(con)
    record_assignment(con, result, "run-1", dt.datetime(2026, 12, 6, 2))
    rows = con.execute(
        "select event_type, source, source_record_id, run_id from identity_events "
        "order by event_type"
    ).fetchall()
    assert rows == [("new", None, None, "run-1"), ("record_moved", "shop", "A:2", "run-1")]
