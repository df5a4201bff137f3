"""Stable ids voted over changed clusters only (`assign_ids`): exactly what voting over every
cluster (`vote_ids`) gives."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from ccv.identity import stable_ids
from ccv.identity.stable_ids import LastCustomers, assign_ids, vote_ids
from ccv.identity.store import last_records


def night(rng: np.random.Generator, records: int, clusters: int) -> pd.DataFrame:
    keys = [f"s:{i:04d}" for i in range(records)]
    return pd.DataFrame({"record_key": keys, "cluster": rng.integers(0, clusters, records)})


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(12))
def test_voting_over_changed_clusters_only_equals_voting_over_all(seed):
    rng = np.random.default_rng(seed)
    last = night(rng, 300, 120)
    nothing = pd.DataFrame({"record_key": [], "customer_id": []}, dtype=object)
    last_ids = vote_ids(last, nothing, nothing.rename(columns={"record_key": "created_run_id"}))
    previous = last_ids.ids[["record_key", "customer_id"]]
    registry = pd.DataFrame(
        {"customer_id": previous["customer_id"].unique(), "created_run_id": "r1"}
    )
    registry["created_run_id"] = [f"r{rng.integers(0, 5)}" for _ in range(len(registry))]
    # tonight: most clusters as they were, some records moved, some gone, some new
    tonight = last.copy()
    moved = rng.random(len(tonight)) < 0.05
    tonight.loc[moved, "cluster"] = rng.integers(0, 130, moved.sum())
    tonight = tonight[rng.random(len(tonight)) > 0.02]
    fresh = pd.DataFrame(
        {"record_key": [f"t:{i}" for i in range(10)], "cluster": rng.integers(100, 140, 10)}
    )
    tonight = pd.concat([tonight, fresh], ignore_index=True)

    full = vote_ids(tonight, previous, registry)
    fast = assign_ids(tonight, previous, registry)

    pdt.assert_frame_equal(
        fast.ids.reset_index(drop=True), full.ids.reset_index(drop=True), check_dtype=False
    )
    for part in ("events", "new_ids", "retired"):
        assert canonical(getattr(fast, part)).equals(canonical(getattr(full, part))), part
    assert len(full.events)  # the night changed something


def test_voting_on_a_first_night_and_on_an_unchanged_night():
    tonight = pd.DataFrame({"record_key": ["a", "b", "c"], "cluster": [0, 0, 1]})
    empty = pd.DataFrame({"record_key": [], "customer_id": []}, dtype=object)
    registry = pd.DataFrame({"customer_id": [], "created_run_id": []}, dtype=object)
    first = assign_ids(tonight, empty, registry)
    assert len(first.new_ids) == 2
    again = assign_ids(
        tonight, first.ids[["record_key", "customer_id"]], first.new_ids.assign(created_run_id="r")
    )
    assert again.events.empty and again.new_ids.empty and again.retired.empty
    assert again.ids["customer_id"].tolist() == first.ids["customer_id"].tolist()


def test_a_record_key_twice_in_last_nights_crosswalk_votes_over_all_clusters():
    """A crosswalk that names a record twice (it cannot tell the record's one customer) makes
    `assign_ids` vote as `vote_ids` does, over every cluster."""
    tonight = pd.DataFrame({"record_key": ["a", "b", "c"], "cluster": [0, 0, 1]})
    previous = pd.DataFrame(
        {"record_key": ["a", "a", "b", "c"], "customer_id": ["C1", "C2", "C1", "C3"]}
    )
    registry = pd.DataFrame({"customer_id": ["C1", "C2", "C3"], "created_run_id": "r"})
    got, want = assign_ids(tonight, previous, registry), vote_ids(tonight, previous, registry)
    pdt.assert_frame_equal(canonical(got.ids), canonical(want.ids))
    pdt.assert_frame_equal(canonical(got.events), canonical(want.events))


def test_voting_when_the_only_change_is_a_new_customer():
    """The changed clusters then hold no previous record: nothing to vote, one id minted."""
    last = pd.DataFrame({"record_key": ["a", "b", "c"], "cluster": [0, 0, 1]})
    empty = pd.DataFrame({"record_key": [], "customer_id": []}, dtype=object)
    registry = pd.DataFrame({"customer_id": [], "created_run_id": []}, dtype=object)
    first = assign_ids(last, empty, registry)
    previous = first.ids[["record_key", "customer_id"]].astype("str")
    tonight = pd.DataFrame({"record_key": ["a", "b", "c", "d"], "cluster": [5, 5, 7, 9]})
    registry = first.new_ids.assign(created_run_id="r1")
    fast = assign_ids(tonight, previous, registry)
    full = vote_ids(tonight, previous, registry)
    pdt.assert_frame_equal(fast.ids, full.ids, check_dtype=False)
    assert fast.events["event_type"].tolist() == ["new"]
    assert fast.events["customer_id"].tolist() == fast.new_ids["customer_id"].tolist()
    assert fast.ids["customer_id"].iloc[:3].tolist() == previous["customer_id"].tolist()


def test_the_module_examples_hold():
    import doctest

    assert doctest.testmod(stable_ids).failed == 0


@pytest.mark.parametrize("seed", range(3))
def test_last_customers_read_from_the_warehouse_are_those_of_the_crosswalk(seed):
    """`store.last_records` (a key join in DuckDB) finds each record's last customer and
    each customer's record count as `LastCustomers.by_key` does on the crosswalk's frame;
    which compared columns kept their value; and the records gone since."""
    rng = np.random.default_rng(seed)
    last = pd.DataFrame(
        {
            "record_kind": rng.choice(["customer", "order"], 400),
            "source": rng.choice(["crm", "shop"], 400),
            "source_record_id": [f"{i:04d}" for i in range(400)],
            "customer_id": [f"C{c}" for c in rng.integers(0, 150, 400)],
            "transactions": rng.integers(1, 4, 400),
        }
    )
    tonight = pd.concat(
        [
            last.sample(frac=0.9, random_state=seed),
            pd.DataFrame({"record_kind": "order", "source": "shop", "source_record_id": ["new"]}),
        ],
        ignore_index=True,
    )[["record_kind", "source", "source_record_id", "transactions"]]
    tonight["transactions"] = tonight["transactions"].fillna(1).astype("int64")
    tonight.loc[::7, "transactions"] += 1  # some records gained an order
    con = duckdb.connect()
    first = last_records(con, tonight, ("transactions",))  # a first run: no identity_records
    assert (first.customers.code == -1).all() and not first.same["transactions"].any()
    con.register("_last", last)
    con.execute("create table identity_records as select * from _last")

    found = last_records(con, tonight, ("transactions",))
    got = found.customers

    key = lambda frame: frame["source"] + ":" + frame["source_record_id"]  # noqa: E731
    want = LastCustomers.by_key(key(tonight), pd.DataFrame({"record_key": key(last), **last}))
    as_ids = lambda found: np.where(  # noqa: E731
        found.code >= 0, found.ids.to_numpy(zero_copy_only=False)[found.code], None
    )
    assert as_ids(got).tolist() == as_ids(want).tolist()
    assert dict(zip(got.ids.to_pylist(), got.counts, strict=True)) == dict(
        zip(want.ids.to_pylist(), want.counts, strict=True)
    )
    assert as_ids(got)[-1] is None  # the new record
    # a kept value is flagged the same; a changed one, or a new record's, is not
    before = last.set_index(["source", "source_record_id"])["transactions"]
    kept = [
        before.get((s, r)) == t
        for s, r, t in tonight[["source", "source_record_id", "transactions"]].itertuples(
            index=False
        )
    ]
    assert found.same["transactions"].tolist() == kept
    assert 0 < sum(kept) < len(kept)
    # last night's records that tonight lacks are left in _gone_records
    gone = con.execute("select source_record_id from _gone_records").fetchall()
    assert sorted(r for (r,) in gone) == sorted(
        set(last["source_record_id"]) - set(tonight["source_record_id"])
    )
