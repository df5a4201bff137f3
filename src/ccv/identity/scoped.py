"""Re-cluster only the part of the record graph that a night can change.

Why: clustering decides each connected component of the links on that component's links
alone — guards, the strong and weak tiers and the order of links never look past it
(`clustering.cluster`) — and on a night that reuses the match parameters with their frozen
term frequencies (`term_counts`), a link between two records that did not change weighs what
it weighed last night. So a component none of whose records or links changed clusters as it
did: its customers, match rules and evidence are last night's, and clustering millions of
records again (plus the deterministic links over all of them) only to find that out cost
~10 s of a 1 % night at a million customers.

A night re-clusters its *scope*: every record of a last-night component that holds

* a record standardised tonight (new, changed, or re-blanked) or gone since,
* an end of a link that is new tonight or whose blocking rules changed, or of a candidate
  pair gone between two records that are still there (a block grew past the cap): a pair
  keeps its weight while its records do, and one below the threshold is no edge at all, or
* a record sharing a deterministic link key (e-mail key, phone, loyalty id) with a record
  standardised tonight, a CRM record named by such a transaction, or a transaction naming
  such a CRM record (the deterministic links those records gain),

plus those records themselves (new ones have no component yet). Any link of tonight then has
both ends in the scope or neither: a link between two unchanged records is last night's, so
both ends were in one component, and every other link has its ends among the records above.
(`close_over_links` checks this for the probabilistic links, and the scope is widened and
scored again should one cross it.) Clustering the scope alone therefore gives what clustering
everything gives (`tests/test_scoped_clustering.py` compares both on the same nights).

Persisted: ``identity_clusters``, per identity record (by ``record_no``) its cluster, its
component over all links (used or refused) and how it joined its customer (a code of
`resolve.RULE_LABELS`). Clusters and components are named by their smallest ``record_no``,
so an unchanged group keeps its name from night to night.

A night re-clusters everything instead — and rewrites the table whole — when it estimates
parameters, scores without frozen term frequencies, or cannot build on last night's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ccv.identity.arrays import unique_sorted
from ccv.identity.matching import MatchResult

DDL = (
    "create table if not exists identity_clusters (record_no bigint, cluster bigint, "
    "component bigint, rule utinyint)"
)


def smallest(labels: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Per element, the smallest of `names` among the elements with its label.

    >>> smallest(np.array([0, 1, 0]), np.array([7, 5, 3])).tolist()
    [3, 5, 3]
    """
    if not len(labels):
        return np.zeros(0, dtype=np.int64)
    low = np.full(int(labels.max()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(low, labels, names)
    return low[labels]


@dataclass(frozen=True)
class LastClusters:
    """Last night's ``identity_clusters`` per record of tonight (-1: a record new tonight)."""

    cluster: np.ndarray
    component: np.ndarray
    rule: np.ndarray
    gone_components: np.ndarray
    """components of last night's records that are not records tonight (gone, or changed:
    a changed record is stored again under a new ``record_no``)"""


def last_clusters(
    con: duckdb.DuckDBPyConnection,
    record_no: np.ndarray,
    dirty: np.ndarray,
    stale: np.ndarray | None = None,
) -> LastClusters | None:
    """Last night's clusters of tonight's records (`record_no`, in the night's order), or None
    when they cannot be built on: no table, or an unchanged record (not `dirty`) without a
    row (a warehouse older than the table).

    A new record can be numbered with a gone record's ``record_no`` (numbering continues
    after the highest stored one): it then shows the gone record's component, and being
    dirty it brings that component into the scope, as the gone record would have.

    `stale`: the night's records are a neighbourhood (`neighbourhood`), not all: read the rows
    of theirs and of the `stale` record numbers (gone or changed) only."""
    con.execute(DDL)
    sql = "select record_no, cluster, component, rule from identity_clusters"
    if stale is None:
        stored = con.execute(sql).fetchnumpy()
    else:
        con.register("_cluster_nos", pa.table({"record_no": np.concatenate([record_no, stale])}))
        try:
            stored = con.execute(f"{sql} semi join _cluster_nos n using (record_no)").fetchnumpy()
        finally:
            con.unregister("_cluster_nos")
    stored_no = np.asarray(stored["record_no"], dtype=np.int64)
    if not len(stored_no) and stale is None:  # (a neighbourhood may be empty: no change)
        return None
    size = int(max(record_no.max(initial=-1), stored_no.max(initial=-1))) + 1
    position = np.full(size, -1, dtype=np.int64)
    position[record_no] = np.arange(len(record_no))
    at = position[stored_no]
    here = at >= 0
    out = {}
    for column in ("cluster", "component", "rule"):
        values = np.full(len(record_no), -1, dtype=np.int64)
        values[at[here]] = np.asarray(stored[column], dtype=np.int64)[here]
        out[column] = values
    if (out["cluster"][~dirty] < 0).any():
        return None
    gone = np.asarray(stored["component"], dtype=np.int64)[~here]
    return LastClusters(**out, gone_components=unique_sorted(gone))


def scope(
    std: pd.DataFrame,
    dirty: np.ndarray,
    touched: np.ndarray,
    last: LastClusters,
    link_columns: list[str],
) -> np.ndarray:
    """Per record of tonight: whether it is re-clustered (see the module docstring).

    `touched`: std positions of the ends of new and changed links and of gone pairs
    (`incremental.incremental_links`). The seeds may be
    more than needed (the references are matched by record id alone): a wider scope costs
    time, never correctness."""
    seed = dirty.copy()
    seed[touched] = True
    standardised = np.flatnonzero(dirty)
    for column in link_columns:
        keys = std[column].iloc[standardised].dropna().unique()
        if len(keys):
            seed |= std[column].isin(keys).to_numpy(dtype=bool, na_value=False)
    is_crm = (std["record_kind"] == "customer").to_numpy()
    named = std["ref_record_id"].iloc[standardised].dropna().unique()
    if len(named):
        seed |= is_crm & std["source_record_id"].isin(named).to_numpy(dtype=bool)
    new_crm = std["source_record_id"].iloc[np.flatnonzero(dirty & is_crm)].unique()
    if len(new_crm):
        seed |= std["ref_record_id"].isin(new_crm).to_numpy(dtype=bool, na_value=False)
    return _with_components(seed, last, last.gone_components)


def _with_components(seed: np.ndarray, last: LastClusters, extra: np.ndarray) -> np.ndarray:
    """`seed` and every record of a last-night component holding a seed, or in `extra`."""
    component = last.component
    hit = unique_sorted(np.concatenate([component[seed & (component >= 0)], extra]))
    return seed | ((component >= 0) & np.isin(component, hit))


def close_over_links(in_scope: np.ndarray, matched: MatchResult, last: LastClusters) -> np.ndarray:
    """`in_scope` with the last-night components of both ends of every link of `matched` that
    has one end in it and one outside (by the reasoning in the module docstring there is none:
    this only guards it). The caller scores the links of a widened scope and asks again."""
    left = matched.links["left"].to_numpy(dtype=np.int64)
    right = matched.links["right"].to_numpy(dtype=np.int64)
    cross = in_scope[left] != in_scope[right]
    if not cross.any():
        return in_scope
    ends = np.zeros(len(in_scope), dtype=bool)
    ends[left[cross]] = True
    ends[right[cross]] = True
    return in_scope | _with_components(ends, last, np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class Clustered:
    """Tonight's clusters of every record (std order)."""

    cluster: np.ndarray  # named by the smallest record_no of its records
    component: np.ndarray  # likewise
    rule: np.ndarray  # how the record joined its customer (a code of `resolve.RULE_LABELS`)
    edges: pd.DataFrame  # the links the re-clustered records' clusters rest on (`cluster_links`)


def cluster_scope(
    std: pd.DataFrame,
    matched: MatchResult,
    in_scope: np.ndarray,
    last: LastClusters,
    cluster_links: Callable[[pd.DataFrame, MatchResult], tuple],
    rule_codes: Callable[[int, pd.DataFrame], np.ndarray],
) -> Clustered:
    """Cluster the records `in_scope` on their own (`cluster_links`, `rule_codes` as
    `resolve` runs them on all records); every other record keeps last night's cluster,
    component and rule. The edges come back in std positions, ``link`` in `matched.links`
    rows."""
    rows = np.flatnonzero(in_scope)
    links = matched.links
    inside = np.flatnonzero(in_scope[links["left"].to_numpy(dtype=np.int64)])
    position = np.full(len(std), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    sub_links = links.iloc[inside].reset_index(drop=True)
    sub_links["left"] = position[sub_links["left"].to_numpy(dtype=np.int64)]
    sub_links["right"] = position[sub_links["right"].to_numpy(dtype=np.int64)]
    sub = std.iloc[rows].reset_index(drop=True)
    labels, edges, components = cluster_links(sub, replace(matched, links=sub_links))
    sub_rules = rule_codes(len(sub), edges)
    del sub
    edges["left"] = rows[edges["left"].to_numpy(dtype=np.int64)]
    edges["right"] = rows[edges["right"].to_numpy(dtype=np.int64)]
    link = edges["link"].to_numpy(dtype=np.int64, copy=True)
    probabilistic = link >= 0
    link[probabilistic] = inside[link[probabilistic]]
    edges["link"] = link
    record_no = std["record_no"].to_numpy(dtype=np.int64)[rows]
    cluster, component = last.cluster.copy(), last.component.copy()
    cluster[rows] = smallest(labels, record_no)
    component[rows] = smallest(components, record_no)
    rule = np.maximum(last.rule, 0).astype(np.int8)
    rule[rows] = sub_rules
    return Clustered(cluster, component, rule, edges)


def save_clusters(
    con: duckdb.DuckDBPyConnection,
    record_no: np.ndarray,
    clustered: Clustered,
    rows: np.ndarray | None,
    stale: np.ndarray,
) -> None:
    """Write ``identity_clusters``: whole (`rows` None), or the records at `rows` (std
    positions) after deleting their rows and those of the `stale` record numbers (records gone
    or stored again under a new number)."""
    chosen = slice(None) if rows is None else rows
    table = pa.table(
        {
            "record_no": record_no[chosen],
            "cluster": clustered.cluster[chosen],
            "component": clustered.component[chosen],
            "rule": clustered.rule[chosen].astype(np.uint8),
        }
    )
    con.register("_clusters", table)
    try:
        if rows is None:
            con.execute("create or replace table identity_clusters as select * from _clusters")
            return
        con.execute(DDL)
        con.register("_stale_nos", pa.table({"record_no": stale.astype(np.int64)}))
        try:
            con.execute(
                "delete from identity_clusters c using (select record_no from _clusters "
                "union all select record_no from _stale_nos) d where c.record_no = d.record_no"
            )
        finally:
            con.unregister("_stale_nos")
        con.execute("insert into identity_clusters select * from _clusters")
    finally:
        con.unregister("_clusters")
