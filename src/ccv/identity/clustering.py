"""Clustering of scored record pairs into customers, with integrity guards.

Plain connected components over every pair above the threshold make one bad link merge two
people, and a chain of weak links merge many. So clustering works in two tiers:

1. **Strong links** (weight ≥ `strong`) form connected components (scipy, fast at millions).
   A component that breaks a guard — two different loyalty ids, or birth dates too far apart to be
   a typo or a day/month swap — is rebuilt from its links strongest first (Kruskal), refusing any
   link that would put two conflicting records together: it splits along its weakest links.
2. **Weak links** (threshold ≤ weight < strong) may only attach a CRM record that is still on
   its own — no other CRM record joined it; its own orders, surveys and consents do not count —
   to a cluster (or pair two lone records), never merge two clusters of several CRM records, and
   a record attached by a weak link cannot attach others: chaining through one weak record is
   impossible. They obey the guards too. Each lone record takes its strongest weak link.
   Why its own transactions do not count: a customer record with an order was otherwise never
   "on its own", so the tier attached only records without history (at 1M customers: recall
   0.970 -> 0.977 at equal precision, docs/benchmarks.md).

Only components that break a guard (less the links of their guardless leaves, see
`_guardless_leaves`) and the weak links go through the Python loop; the rest is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _components

from ccv.identity.arrays import unique_sorted


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


@dataclass(frozen=True)
class Guards:
    """Per-record values that two records of one customer must not disagree on.

    loyalty_ids: the record's loyalty id or None (None never conflicts).
    birth_dates: ISO date strings or None. Two birth dates conflict when they are more than
    `max_birth_gap_days` apart, are not a day/month swap of each other, and differ in more than one
    character (a single typo).
    """

    loyalty_ids: np.ndarray
    birth_dates: np.ndarray
    check_loyalty: bool = True
    max_birth_gap_days: int = 366


def birth_dates_conflict(a: str, b: str, max_gap_days: int) -> bool:
    """True when two ISO birth dates cannot belong to one person (see Guards).

    >>> birth_dates_conflict("1985-03-04", "1985-04-03", 366)  # day/month swapped
    False
    >>> birth_dates_conflict("1985-03-04", "1958-03-04", 366)  # one transposition is two edits
    True
    >>> birth_dates_conflict("1985-03-04", "1986-03-04", 366)  # one typo
    False
    """
    if a == b:
        return False
    # `date.fromisoformat`: a tenth of `pd.Timestamp`'s cost (called ~100k times at 1M records)
    gap = abs((date.fromisoformat(a) - date.fromisoformat(b)).days)
    if gap <= max_gap_days:
        return False
    if a[:4] == b[:4] and a[5:7] == b[8:10] and a[8:10] == b[5:7]:
        return False
    return sum(x != y for x, y in zip(a, b, strict=True)) > 1


class _Sets:
    """Union-find whose sets remember their loyalty ids and birth dates.

    Plain Python lists, not numpy arrays: the loops that use it run once per link, and a numpy
    scalar read costs several times a list's. A set's values are asked of `initial` the first
    time they are needed (its members' values, for a strong component kept whole), so only the
    few sets a guard is ever checked on are gathered.
    """

    def __init__(
        self,
        parent: np.ndarray,
        size: np.ndarray,
        crm: np.ndarray,
        guards: Guards,
        initial: _Members,
    ) -> None:
        self.parent = parent.tolist()
        self.size = size.tolist()
        self.crm = crm.tolist()  # CRM records per set (the weak tier's "on its own")
        self.weak = bytearray(len(self.parent))  # attached by a weak link
        self.guards = guards
        self.initial = initial
        self.loyalty: dict[int, set] = {}
        self.births: dict[int, set] = {}

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    def _values(self, root: int) -> tuple[set, set]:
        if root not in self.loyalty:
            self.loyalty[root], self.births[root] = self.initial.values(root)
        return self.loyalty[root], self.births[root]

    def conflict(self, a: int, b: int) -> bool:
        la, ba = self._values(a)
        lb, bb = self._values(b)
        if self.guards.check_loyalty and la and lb and la != lb:
            return True
        if not ba or not bb:  # most records carry no birth date
            return False
        gap = self.guards.max_birth_gap_days
        return any(birth_dates_conflict(x, y, gap) for x in ba for y in bb)

    def union(self, a: int, b: int) -> None:
        la, ba = self._values(a)
        lb, bb = self._values(b)
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
        self.crm[a] += self.crm[b]
        self.loyalty[a], self.births[a] = la | lb, ba | bb


class _Members:
    """The guard values of a set before any union of the loops: a record's own, or all its
    members' for a strong component kept whole (rooted at its smallest record)."""

    def __init__(self, roots: np.ndarray, whole: np.ndarray, guards: Guards) -> None:
        members = np.flatnonzero(whole)
        self.order = members[np.argsort(roots[members], kind="stable")]
        self.sorted_roots = roots[self.order]
        self.whole = whole.tolist()
        self.guards = guards
        # a lone record's values are read one at a time (~200k times at a million customers):
        # from Python lists, not through numpy indexing
        self.loyalty = guards.loyalty_ids.tolist()
        self.births = guards.birth_dates.tolist()

    def values(self, root: int) -> tuple[set, set]:
        if not self.whole[root]:
            loyalty, birth = self.loyalty[root], self.births[root]
            return (
                {loyalty} if loyalty is not None and loyalty == loyalty else set(),
                {birth} if birth is not None and birth == birth else set(),
            )
        lo, hi = np.searchsorted(self.sorted_roots, [root, root + 1])
        rows = self.order[lo:hi]
        loyalty = {v for v in self.guards.loyalty_ids[rows] if v is not None and v == v}
        births = {v for v in self.guards.birth_dates[rows] if v is not None and v == v}
        return loyalty, births


def cluster(
    n: int,
    edges: pd.DataFrame,
    guards: Guards,
    strong: float,
    crm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster records 0..n-1 from `edges` (left, right, weight; all above the threshold).

    `crm`: which records are CRM records (None: all are), for the weak tier's "on its own".

    Returns (label per record, boolean mask of the edges that were used or lie inside a final
    cluster), so the caller can keep the evidence of accepted links only.
    """
    left = edges["left"].to_numpy(dtype=np.int64)
    right = edges["right"].to_numpy(dtype=np.int64)
    weight = edges["weight"].to_numpy(dtype=float)
    is_strong = weight >= strong
    labels = connected_components(n, left[is_strong], right[is_strong])

    # 1. strong components: vectorised unless a guard is broken
    broken = _broken_components(labels, guards)
    in_broken = np.isin(labels[left], broken) & is_strong
    roots = _first_members(labels)[labels]  # each component's smallest record
    sizes = np.bincount(labels, minlength=labels.max() + 1 if n else 0)[labels]
    # records of broken components restart on their own and are rebuilt strongest link first
    members = np.isin(labels, broken)
    parent = np.where(members, np.arange(n), roots)
    sizes[members] = 1
    crm = np.ones(n, dtype=bool) if crm is None else np.asarray(crm, dtype=bool)
    bins = labels.max() + 1 if n else 0
    crm_sizes = np.bincount(labels, weights=crm, minlength=bins)[labels].astype(np.int64)
    crm_sizes[members] = crm[members]
    weak = np.flatnonzero(~is_strong)
    # only sets that a weak link touches are ever checked whole against a guard
    touched = np.zeros(n, dtype=bool)
    touched[roots[np.concatenate([left[weak], right[weak]])]] = True
    initial = _Members(roots, touched[roots] & ~members, guards)
    sets = _Sets(parent, sizes, crm_sizes, guards, initial)
    rebuilt = np.flatnonzero(in_broken)
    leaves, hub = _guardless_leaves(n, left[rebuilt], right[rebuilt], guards)
    rebuilt = rebuilt[~leaves]
    order = rebuilt[np.argsort(-weight[rebuilt], kind="stable")]
    for a, b in zip(left[order].tolist(), right[order].tolist(), strict=True):
        a, b = sets.find(a), sets.find(b)
        if a != b and not sets.conflict(a, b):
            sets.union(a, b)
    for leaf, other in hub.items():  # each joins whatever set its one neighbour ended in
        root = sets.find(other)
        sets.parent[leaf] = root
        sets.size[root] += 1
        sets.crm[root] += int(crm[leaf])

    # 2. weak links attach lone CRM records only, strongest first, never chaining
    order = weak[np.argsort(-weight[weak], kind="stable")]
    size, is_weak = sets.crm, sets.weak
    for x, y in zip(left[order].tolist(), right[order].tolist(), strict=True):
        a, b = sets.find(x), sets.find(y)
        if a == b:
            continue
        lone_a = size[a] == 1 and not is_weak[x]
        lone_b = size[b] == 1 and not is_weak[y]
        if not (lone_a or lone_b):
            continue
        if (lone_a and is_weak[y]) or (lone_b and is_weak[x]):
            continue  # the other end was itself attached weakly: no chains
        if sets.conflict(a, b):
            continue
        sets.union(a, b)
        is_weak[x if lone_a else y] = True

    final = _roots(np.asarray(sets.parent, dtype=np.int64))
    used = final[left] == final[right]
    return final, used


def _guardless_leaves(
    n: int, left: np.ndarray, right: np.ndarray, guards: Guards
) -> tuple[np.ndarray, dict[int, int]]:
    """Among the links of broken components (`left`, `right`): which ones end in a *guardless
    leaf* — a record with no value a guard checks whose links all go to one other record — and
    that neighbour per leaf.

    Why: such a link always joins (a set without guard values conflicts with nothing), and the
    leaf can bridge no two records, so when it joins does not change the clusters: it is added
    to its neighbour's final set after the rebuild instead of going through the loop. Most
    records of a broken component are transactions (no birth date) hanging off one CRM record,
    so this takes most links out of the per-link Python loop.
    """
    guarded = pd.notna(guards.birth_dates)
    if guards.check_loyalty:
        guarded |= pd.notna(guards.loyalty_ids)
    ends = np.concatenate([left, right])
    others = np.concatenate([right, left])
    # records with links to exactly one other record: the smallest and largest neighbour agree
    lowest = np.full(n, n, dtype=np.int64)
    highest = np.full(n, -1, dtype=np.int64)
    np.minimum.at(lowest, ends, others)
    np.maximum.at(highest, ends, others)
    leaf = (lowest == highest) & ~guarded
    # a link between two leaves (a component of two guardless records is never broken) stays
    is_leaf_link = leaf[left] ^ leaf[right]
    records = np.where(leaf[left], left, right)[is_leaf_link]
    hub = dict(zip(records.tolist(), lowest[records].tolist(), strict=True))
    return is_leaf_link, hub


def _first_members(labels: np.ndarray) -> np.ndarray:
    """The smallest record of every label 0..k-1 (a groupby-min, without pandas' hashing).

    >>> _first_members(np.array([1, 0, 1, 0, 2])).tolist()
    [1, 0, 4]
    """
    first = np.full(int(labels.max(initial=-1)) + 1, len(labels), dtype=np.int64)
    np.minimum.at(first, labels, np.arange(len(labels)))
    return first


def _roots(parent: np.ndarray) -> np.ndarray:
    """The root of every node of a union-find forest (what `find` returns), by pointer jumping:
    a few vectorised passes instead of one Python call per record."""
    parent = parent.astype(np.int64)
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def _distinct_per_label(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, value code) of every distinct non-missing value per label, sorted by label."""
    codes, _ = pd.factorize(values)  # None / NaN -> -1
    keep = codes >= 0
    width = int(codes.max(initial=0)) + 1
    pairs = unique_sorted(labels[keep] * width + codes[keep])
    return pairs // width, pairs % width


def _broken_components(labels: np.ndarray, guards: Guards) -> np.ndarray:
    """Labels of components holding two loyalty ids, or two conflicting birth dates."""
    broken = set()
    if guards.check_loyalty:
        owners, _ = _distinct_per_label(labels, guards.loyalty_ids)
        counts = np.bincount(owners, minlength=1)
        broken |= {int(label) for label in np.flatnonzero(counts > 1)}
    # only components with two distinct birth dates go through the pairwise test
    owners, codes = _distinct_per_label(labels, guards.birth_dates)
    _, uniques = pd.factorize(guards.birth_dates)
    multi = np.flatnonzero(np.bincount(owners, minlength=1) > 1)
    chosen = np.isin(owners, multi)
    frame = pd.DataFrame(
        {"label": owners[chosen], "birth": np.asarray(uniques, dtype=object)[codes[chosen]]}
    )
    for label, group in frame.groupby("label")["birth"]:
        values = group.tolist()
        if any(
            birth_dates_conflict(a, b, guards.max_birth_gap_days)
            for i, a in enumerate(values)
            for b in values[i + 1 :]
        ):
            broken.add(label)
    return np.array(sorted(broken), dtype=np.int64)
