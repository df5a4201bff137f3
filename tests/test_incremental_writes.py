"""A delta night rewrites only what changed: stable ids voted over changed clusters only, and
identity tables rewritten per changed customer, with exactly the full path's result."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from ccv.identity.resolve import assign_changed_ids, write_rows
from ccv.identity.stable_ids import assign_ids


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
    last_ids = assign_ids(last, nothing, nothing.rename(columns={"record_key": "created_run_id"}))
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

    full = assign_ids(tonight, previous, registry)
    fast = assign_changed_ids(tonight, previous, registry)

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
    first = assign_changed_ids(tonight, empty, registry)
    assert len(first.new_ids) == 2
    again = assign_changed_ids(
        tonight, first.ids[["record_key", "customer_id"]], first.new_ids.assign(created_run_id="r")
    )
    assert again.events.empty and again.new_ids.empty and again.retired.empty
    assert again.ids["customer_id"].tolist() == first.ids["customer_id"].tolist()


def test_voting_when_the_only_change_is_a_new_customer():
    """The changed clusters then hold no previous record: nothing to vote, one id minted."""
    last = pd.DataFrame({"record_key": ["a", "b", "c"], "cluster": [0, 0, 1]})
    empty = pd.DataFrame({"record_key": [], "customer_id": []}, dtype=object)
    registry = pd.DataFrame({"customer_id": [], "created_run_id": []}, dtype=object)
    first = assign_changed_ids(last, empty, registry)
    previous = first.ids[["record_key", "customer_id"]].astype("str")
    tonight = pd.DataFrame({"record_key": ["a", "b", "c", "d"], "cluster": [5, 5, 7, 9]})
    registry = first.new_ids.assign(created_run_id="r1")
    fast = assign_changed_ids(tonight, previous, registry)
    full = assign_ids(tonight, previous, registry)
    pdt.assert_frame_equal(fast.ids, full.ids, check_dtype=False)
    assert fast.events["event_type"].tolist() == ["new"]
    assert fast.events["customer_id"].tolist() == fast.new_ids["customer_id"].tolist()
    assert fast.ids["customer_id"].iloc[:3].tolist() == previous["customer_id"].tolist()


def table(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("select * from t order by all").fetchall()


def test_a_delta_write_rewrites_only_changed_customers_and_equals_a_full_write():
    con = duckdb.connect()
    con.execute(
        "create table t as select * from (values ('r1', 'C1', 1, 'x'), ('r1', 'C1', 2, 'y'), "
        "('r1', 'C2', 3, 'z'), ('r1', 'C3', 4, 'w')) as v(run_id, customer_id, n, s)"
    )
    before = dict(con.execute("select n, rowid from t").fetchall())
    # tonight: C1 unchanged, C2 changed, C3 gone, C4 new
    tonight = (
        "select * from (values ('r2', 'C1', 1, 'x'), ('r2', 'C1', 2, 'y'), ('r2', 'C2', 3, 'Z'), "
        "('r2', 'C4', 5, 'v')) as v(run_id, customer_id, n, s)"
    )
    write_rows(con, "t", tonight, delta=True, run_id="r2")
    after = dict(con.execute("select n, rowid from t").fetchall())
    assert after[1] == before[1] and after[2] == before[2]  # C1's rows were not rewritten
    assert after[3] != before[3]  # C2's were
    delta = table(con)
    write_rows(con, "t", tonight, delta=False)
    assert delta == table(con)  # every row carries tonight's run id
    assert {row[0] for row in delta} == {"r2"}


def test_a_delta_write_falls_back_to_a_full_write_when_columns_change():
    con = duckdb.connect()
    con.execute("create table t as select 'C1' as customer_id, 1 as n")
    write_rows(con, "t", "select 'C1' as customer_id, 1.5 as n", delta=True)
    assert table(con) == [("C1", pytest.approx(1.5))]
