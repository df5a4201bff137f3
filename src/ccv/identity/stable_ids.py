"""Stable customer ids: a person keeps their `customer_id` from night to night.

Clustering is recomputed every run, so cluster labels mean nothing across runs. This module maps
the new clusters onto the ids of the previous run's crosswalk:

- a record seen before votes for its previous id; each previous id goes to the new cluster that
  holds most of its records (the *largest part*; ties go to the cluster with the smallest record
  key), so when a cluster splits, the largest part keeps the id;
- a new cluster that wins several previous ids keeps the *oldest* (first created; ties by id) —
  the others are retired as merged into it;
- a cluster that wins no id gets a new one: a `split` if it holds records of an id it lost, a
  `new` customer otherwise;
- records whose id changed for any other reason are reported as `record_moved`.

Every change becomes a row of `identity_events`; a re-run with unchanged inputs yields no event.

>>> import pandas as pd
>>> new = pd.DataFrame({"record_key": ["a", "b", "c"], "cluster": [0, 0, 1]})
>>> prev = pd.DataFrame({"record_key": ["a", "b"], "customer_id": ["C1", "C2"]})
>>> registry = pd.DataFrame({"customer_id": ["C1", "C2"], "created_run_id": ["r1", "r0"]})
>>> result = assign_ids(new, prev, registry)
>>> result.ids.sort_values("record_key")["customer_id"].tolist()[:2]  # C2 is older
['C2', 'C2']
>>> sorted(result.events["event_type"])
['merge', 'new']
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

EVENT_COLUMNS = ["event_type", "customer_id", "other_customer_id", "record_key", "reason"]


@dataclass(frozen=True)
class Assignment:
    """The ids per record (`record_key, cluster, customer_id`) and the events that led there."""

    ids: pd.DataFrame
    events: pd.DataFrame
    new_ids: pd.DataFrame  # customer_id, created for ids minted in this run
    retired: pd.DataFrame  # customer_id, merged_into


def mint_ids(anchors: list[str], taken: set[str]) -> list[str]:
    """New ids from each cluster's smallest record key, salted where an id was ever used.

    Hashing the anchor makes a first run deterministic: the same inputs mint the same ids.
    """
    out = []
    for anchor in anchors:
        salt = 0
        candidate = "C" + hashlib.sha256(anchor.encode()).hexdigest()[:16]
        while candidate in taken:
            salt += 1
            candidate = "C" + hashlib.sha256(f"{anchor}#{salt}".encode()).hexdigest()[:16]
        taken.add(candidate)
        out.append(candidate)
    return out


def _mint_unused(anchors: list[str], used: tuple[pd.Series, ...]) -> list[str]:
    """`mint_ids` of `anchors`, none of the ids in `used` (every id ever minted).

    Why not a set of every used id: a night mints a few thousand ids while a million customers'
    ids have been used (~0.3 s to turn them into a set of Python strings). So each anchor's
    id is looked up among them (Arrow); only when one is taken do the ids come from `mint_ids`
    over the whole set (the same ids either way: with none taken, no id is salted for them).
    """
    first = mint_ids(anchors, set())  # salted only where two anchors give the same id
    candidates = pa.array(first, type=pa.string())
    met = False
    for ids in used:
        held = pa.array(ids)  # Arrow-backed text: no copy
        if held.null_count < len(held):  # each used id looked up among the few candidates
            met |= pc.any(pc.is_in(held, value_set=candidates.cast(held.type))).as_py()
    if not met:
        return first  # what `mint_ids` gives with every used id: none of them is met
    taken = set().union(*(ids.to_numpy(dtype=object) for ids in used))
    return mint_ids(anchors, taken)


def _isin(values: pd.Series, test: pd.Series) -> np.ndarray:
    """`values.isin(test)` for text, through Arrow's hash set: pandas' `isin` on its Arrow-backed
    strings first turns every value of `test` into a Python object (a second per 100k ids)."""
    if not len(values) or not len(test):
        return np.zeros(len(values), dtype=bool)
    left = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    right = pa.array(test.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    return pc.is_in(left, value_set=right).to_numpy(zero_copy_only=False)


def _anchors(new: pd.DataFrame) -> pd.Series:
    """Each cluster's smallest record key, by cluster (what ``new.groupby("cluster")
    ["record_key"].min()`` gives).

    Why Arrow's hash aggregate: on a first night every one of millions of records is in a
    changed cluster, and pandas' group-by of their text held ~0.5 GB more at the night's
    memory peak."""
    table = pa.table(
        {
            "cluster": new["cluster"].to_numpy(),
            "key": pa.array(new["record_key"].array, type=pa.string()),  # Arrow-backed: no copy
        }
    )
    grouped = table.group_by("cluster", use_threads=False).aggregate([("key", "min")])
    anchors = pd.Series(
        grouped["key_min"].to_numpy(zero_copy_only=False),
        index=pd.Index(grouped["cluster"].to_numpy(), name="cluster"),
        name="record_key",
    )
    return anchors.sort_index()


def vote_ids(new: pd.DataFrame, previous: pd.DataFrame, registry: pd.DataFrame) -> Assignment:
    """Give each new cluster a customer id, reusing previous ids by the rules in the docstring,
    by a vote over every cluster (`assign_ids` gives the same, voting only where needed).

    new: record_key, cluster. previous: record_key, customer_id (last run's crosswalk).
    registry: customer_id, created_run_id (sortable: run ids start with their timestamp).
    """
    anchors = _anchors(new)
    # inner: records no previous crosswalk holds cast no vote (and a first night's millions of
    # records are not joined with an empty crosswalk for nothing, as a left join would)
    joined = new.merge(previous, on="record_key")
    votes = (
        joined.dropna(subset=["customer_id"])
        .groupby(["customer_id", "cluster"])
        .size()
        .rename("n")
        .reset_index()
    )
    votes["anchor"] = votes["cluster"].map(anchors)
    # each previous id goes to the cluster holding most of its records
    winners = (
        votes.sort_values(["customer_id", "n", "anchor"], ascending=[True, False, True])
        .drop_duplicates("customer_id")
        .copy()
    )
    age = registry.set_index("customer_id")["created_run_id"]
    winners["created"] = winners["customer_id"].map(age).fillna("")
    # a cluster that won several ids keeps the oldest
    kept = winners.sort_values(["cluster", "created", "customer_id"]).drop_duplicates("cluster")
    cluster_id = kept.set_index("cluster")["customer_id"]
    merged = winners[~_isin(winners["customer_id"], kept["customer_id"])].copy()
    merged["merged_into"] = merged["cluster"].map(cluster_id)

    lost = votes.merge(winners[["customer_id", "cluster"]], how="left", indicator=True)
    lost = lost[lost["_merge"] == "left_only"]
    split_from = (
        lost.sort_values(["cluster", "n"], ascending=[True, False])
        .drop_duplicates("cluster")
        .set_index("cluster")["customer_id"]
    )

    fresh = anchors[~anchors.index.isin(cluster_id.index)]
    used = (registry["customer_id"], previous["customer_id"])
    minted = pd.Series(_mint_unused(fresh.tolist(), used), index=fresh.index, dtype=object)
    cluster_id = pd.concat([cluster_id, minted])
    is_split = minted.index.isin(split_from.index)
    origin = minted.index.map(split_from)
    events = [
        pd.DataFrame(
            {
                "event_type": pd.Series(is_split).map({True: "split", False: "new"}).to_numpy(),
                "customer_id": minted.to_numpy(),
                "other_customer_id": pd.Series(origin, dtype=object)
                .where(is_split, None)
                .to_numpy(),
                "record_key": None,
                "reason": [
                    f"split from {o}: it kept its largest part"
                    if sp
                    else "records not seen in any earlier cluster"
                    for o, sp in zip(origin, is_split, strict=True)
                ],
            }
        ),
        pd.DataFrame(
            {
                "event_type": "merge",
                "customer_id": merged["merged_into"].to_numpy(),
                "other_customer_id": merged["customer_id"].to_numpy(),
                "record_key": None,
                # built per merge (they are few): with no merge, `merged_into` is an empty
                # float column that text cannot be added to
                "reason": [
                    f"{old} merged into older id {into}"
                    for old, into in zip(merged["customer_id"], merged["merged_into"], strict=True)
                ],
            }
        ),
    ]
    ids = new.assign(customer_id=new["cluster"].map(cluster_id))
    moved = ids.merge(previous, on="record_key", how="inner", suffixes=("", "_previous"))
    moved = moved[
        (moved["customer_id"] != moved["customer_id_previous"])
        & ~_isin(moved["customer_id_previous"], merged["customer_id"])  # told by the merge event
        & ~_isin(moved["customer_id"], minted[is_split])  # told by the split event
    ]
    events.append(
        pd.DataFrame(
            {
                "event_type": "record_moved",
                "customer_id": moved["customer_id"].to_numpy(),
                "other_customer_id": moved["customer_id_previous"].to_numpy(),
                "record_key": moved["record_key"].to_numpy(),
                "reason": ("record moved from " + moved["customer_id_previous"]).to_numpy(),
            }
        )
    )
    events = [e for e in events if len(e)]
    return Assignment(
        ids=ids,
        events=pd.concat(events, ignore_index=True)
        if events
        else pd.DataFrame(columns=EVENT_COLUMNS),
        new_ids=pd.DataFrame({"customer_id": minted.to_numpy(dtype=object)}),
        retired=merged[["customer_id", "merged_into"]].reset_index(drop=True),
    )


@dataclass(frozen=True)
class LastCustomers:
    """Last night's customer of each of tonight's records, by code.

    ``code``: per record of tonight, the position of its last customer in ``ids`` (-1: a
    record last night's crosswalk did not hold). ``ids``: last night's customer ids, as Arrow
    text (they are only ever taken from, and a million of them as Python strings cost a second).
    ``counts``: per id, the records it held last night (tonight's or not).
    """

    code: np.ndarray
    ids: pa.Array
    counts: np.ndarray

    @staticmethod
    def by_key(keys: pd.Series, previous: pd.DataFrame) -> LastCustomers | None:
        """From tonight's record keys and last night's crosswalk (record_key, customer_id);
        None when a key is in the crosswalk twice (which customer it had is unknown)."""
        codes, ids = pd.factorize(previous["customer_id"])
        index = pd.Index(previous["record_key"])
        if not index.is_unique:
            return None
        at = index.get_indexer(keys)
        code = np.full(len(at), -1, dtype=np.int64)
        code[at >= 0] = codes[at[at >= 0]]
        return LastCustomers(
            code=code,
            ids=pa.array(np.asarray(ids, dtype=object), type=pa.string()),
            counts=np.bincount(codes[codes >= 0], minlength=len(ids)),
        )


def assign_ids(new: pd.DataFrame, previous: pd.DataFrame, registry: pd.DataFrame) -> Assignment:
    """Give each new cluster a customer id: what `vote_ids` gives, with the vote run only over
    the clusters that are not exactly one previous customer (`assign_known`).

    new: record_key, cluster. previous: record_key, customer_id (last run's crosswalk).
    registry: customer_id, created_run_id (sortable: run ids start with their timestamp).
    """
    last = LastCustomers.by_key(new["record_key"], previous)
    if last is None:  # a record key twice in the crosswalk: vote the usual way
        return vote_ids(new, previous, registry)
    keys = new["record_key"]
    assigned = assign_known(
        new["cluster"].to_numpy(),
        last,
        lambda rows: keys.iloc[rows],
        _with_ids(registry, last.ids.to_pandas()),
    )
    return replace(assigned, ids=new.assign(customer_id=assigned.ids["customer_id"].to_numpy()))


def assign_known(
    cluster: np.ndarray,
    last: LastCustomers,
    record_keys: Callable[[np.ndarray], pd.Series],
    registry: pd.DataFrame,
    candidates: np.ndarray | None = None,
) -> Assignment:
    """`assign_ids` given each record's last customer: ``ids`` holds ``cluster`` and
    ``customer_id`` per record; `record_keys` gives the record keys of the records at the
    given positions (asked for the records of changed clusters only); `registry` holds every
    id of ``last.ids`` (`vote_ids` must not mint one of them).

    Why: on a delta night nearly every cluster holds exactly the records one customer held
    last night (no record more, none less). `vote_ids` gives such a cluster that customer's
    id with no event: the id has no vote in any other cluster and the cluster no vote for any
    other id. So the ids, events, new and retired ids of the other clusters are what
    `vote_ids` gives on their records alone, and the strings of millions of unchanged
    records need not be built, merged, grouped and sorted again.

    `candidates`: positions of the only records whose cluster may differ from their last
    customer (the scope a night re-clustered, `scoped`); every other record's cluster is its
    last customer, whole. None: any record's may.
    """
    if not len(last.ids):  # a first night: no cluster was anyone's
        kept = np.zeros(len(cluster), dtype=bool)
    elif candidates is None:
        kept = _unchanged_clusters(cluster, last.code, last.counts)
    else:
        kept = np.ones(len(cluster), dtype=bool)
        kept[candidates] = _unchanged_clusters(
            cluster[candidates], last.code[candidates], last.counts
        )
    changed = np.flatnonzero(~kept)
    if not len(changed):  # what `vote_ids` gives a night that changed nothing
        empty = np.array([], dtype=object)
        return Assignment(
            ids=_ids_frame(cluster, last, changed, pa.array([], pa.string())),
            events=pd.DataFrame(columns=EVENT_COLUMNS),
            new_ids=pd.DataFrame({"customer_id": empty}),
            retired=pd.DataFrame({"customer_id": empty, "merged_into": empty}),
        )
    # the keys stay Arrow-backed text: as Python strings the vote's grouping and merges over a
    # first night's millions of records take half as long again
    keys = record_keys(changed).array
    code = last.code[changed]
    known = code >= 0
    voted = vote_ids(
        pd.DataFrame({"record_key": keys, "cluster": cluster[changed]}),
        # last night's crosswalk rows of these records: the only ones the vote reads
        pd.DataFrame(
            {"record_key": keys[known], "customer_id": last.ids.take(code[known]).to_pandas()}
        ),
        registry,
    )
    voted_ids = pa.array(voted.ids["customer_id"].array, type=pa.string())
    return replace(voted, ids=_ids_frame(cluster, last, changed, voted_ids))


def _ids_frame(
    cluster: np.ndarray, last: LastCustomers, changed: np.ndarray, voted: pa.Array
) -> pd.DataFrame:
    """``cluster`` and ``customer_id`` per record: last night's id where its cluster is
    unchanged, else the `voted` one (given for the records at `changed`, in that order).

    The ids are Arrow-backed text put together by `take`s: a frame of millions of Python
    strings costs seconds to build, and again to hand to DuckDB."""
    kept = np.ones(len(cluster), dtype=bool)
    kept[changed] = False
    rows = np.flatnonzero(kept)
    previous = last.ids.take(pa.array(last.code[rows]))
    # the kept records' ids, then the changed ones', put back in record order
    where = np.empty(len(cluster), dtype=np.int64)
    where[np.concatenate([rows, changed])] = np.arange(len(cluster))
    ids = pa.concat_arrays([previous, voted]).take(pa.array(where))
    return pd.DataFrame({"cluster": cluster, "customer_id": ids.to_pandas()}, copy=False)


def _unchanged_clusters(cluster: np.ndarray, code: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per record: its cluster's records all had one previous customer (`code` >= 0), and
    the cluster holds all of that customer's `counts` previous records."""
    frame = pd.DataFrame({"cluster": cluster, "code": code})
    stats = frame.groupby("cluster")["code"].agg(["min", "max", "size"])
    lowest = stats["min"].to_numpy()
    whole = (lowest == stats["max"].to_numpy()) & (lowest >= 0)
    whole[whole] &= counts[lowest[whole]] == stats["size"].to_numpy()[whole]
    return pd.Series(whole, index=stats.index).reindex(cluster).to_numpy()


def _with_ids(registry: pd.DataFrame, ids: pd.Index) -> pd.DataFrame:
    """The registry plus previous ids it lacks (none, normally): `vote_ids` never mints an id
    of either, and the previous crosswalk handed to it is only the changed clusters' part."""
    missing = ids[~_isin(pd.Series(ids), registry["customer_id"])]
    if not len(missing):
        return registry
    extra = pd.DataFrame({"customer_id": np.asarray(missing, dtype=object), "created_run_id": None})
    return pd.concat([registry, extra], ignore_index=True)
