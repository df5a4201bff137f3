"""Clustering of linked records into customers, and the customer ids they get.

Connected components run on a sparse graph (scipy), so millions of records cluster in seconds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _components


def connected_components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component label per node 0..n-1 of the undirected graph with edges (left[i], right[i]).

    >>> connected_components(4, np.array([0]), np.array([2])).tolist()
    [0, 1, 0, 2]
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = _components(graph, directed=False)
    return labels.astype(np.int64)


def customer_ids(cluster: pd.Series, source: pd.Series, record_id: pd.Series) -> pd.Series:
    """A deterministic id per cluster: `C` + 16 hex digits of SHA-256 of its smallest record key.

    The same records give the same id on every run and every machine; 64 bits keep collisions
    negligible (≈1e-5 at 16M customers).
    """
    keys = source.astype(str) + ":" + record_id.astype(str)
    anchor = keys.groupby(cluster).transform("min")
    unique = pd.unique(anchor)
    ids = {k: "C" + hashlib.sha256(k.encode()).hexdigest()[:16] for k in unique}
    return anchor.map(ids)
