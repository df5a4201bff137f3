"""Clustering guards: no two loyalty ids or far-apart birth dates per customer, no weak chains."""

import numpy as np
import pandas as pd

from ccv.identity.clustering import Guards, cluster

STRONG = 5.0


def run(n, edges, loyalty=None, births=None, check_loyalty=True, crm=None):
    frame = pd.DataFrame(edges, columns=["left", "right", "weight"])
    guards = Guards(
        loyalty_ids=np.array(loyalty or [None] * n, dtype=object),
        birth_dates=np.array(births or [None] * n, dtype=object),
        check_loyalty=check_loyalty,
    )
    labels, used = cluster(n, frame, guards, strong=STRONG, crm=crm)
    groups = pd.Series(range(n)).groupby(labels).apply(list).tolist()
    return sorted(groups), used


def test_strong_links_form_components():
    groups, used = run(4, [(0, 1, 9.0), (1, 2, 6.0)])
    assert groups == [[0, 1, 2], [3]]
    assert used.all()


def test_two_loyalty_ids_split_along_the_weakest_link():
    # 0 and 2 hold different cards; 1 links to both, more strongly to 0
    groups, used = run(3, [(0, 1, 10.0), (1, 2, 8.0)], loyalty=["L1", None, "L2"])
    assert groups == [[0, 1], [2]]
    assert used.tolist() == [True, False]


def test_loyalty_guard_can_be_switched_off():
    groups, _ = run(3, [(0, 1, 10.0), (1, 2, 8.0)], loyalty=["L1", None, "L2"], check_loyalty=False)
    assert groups == [[0, 1, 2]]


def test_far_apart_birth_dates_split_but_swaps_and_typos_do_not():
    births = ["1985-03-04", "1985-04-03", "1962-11-20", "1986-03-04"]
    # 1 is a day/month swap of 0, 3 a one-character typo of 0; 2 is someone else
    edges = [(0, 1, 9.0), (1, 2, 6.0), (0, 3, 7.0)]
    groups, _ = run(4, edges, births=births)
    assert groups == [[0, 1, 3], [2]]


def test_weak_link_attaches_a_lone_record_but_never_chains():
    # {0,1} strong; 2 hangs on 1 weakly; 3 hangs only on 2 weakly: it must stay alone
    groups, _ = run(4, [(0, 1, 9.0), (1, 2, 3.0), (2, 3, 4.0)])
    # strongest weak link first: 2-3 pairs two lone records, then 1-2 cannot attach 2 (taken)
    assert groups == [[0, 1], [2, 3]]


def test_weak_link_never_merges_two_clusters():
    groups, _ = run(4, [(0, 1, 9.0), (2, 3, 9.0), (1, 2, 4.0)])
    assert groups == [[0, 1], [2, 3]]


def test_lone_record_joins_the_cluster_of_its_strongest_weak_link():
    edges = [(0, 1, 9.0), (2, 3, 9.0), (4, 0, 3.0), (4, 2, 4.0)]
    groups, _ = run(5, edges)
    assert groups == [[0, 1], [2, 3, 4]]


def test_a_crm_records_own_transactions_leave_it_on_its_own():
    """CRM records 0, 1 (one customer), 2 and 3; 4 is an order of 2's, 5 an order of 3's (their
    deterministic links are strong). 2 with its order is still on its own: a weak link attaches
    it, order and all; 3 could then only join through 2, itself attached weakly: no chains."""
    crm = [True, True, True, True, False, False]
    edges = [(0, 1, 9.0), (2, 4, 9.0), (3, 5, 9.0), (1, 2, 4.0), (2, 3, 3.0)]
    groups, _ = run(6, edges, crm=crm)
    assert groups == [[0, 1, 2, 4], [3, 5]]
    # counting every record, no set of two is on its own: no weak link is used
    groups, _ = run(6, edges)
    assert groups == [[0, 1], [2, 4], [3, 5]]


def test_weak_link_respects_the_guards():
    groups, _ = run(3, [(0, 1, 9.0), (1, 2, 3.0)], loyalty=["L1", None, "L2"])
    assert groups == [[0, 1], [2]]


def reference_clusters(n, edges, loyalty, births, crm, gap=366):
    """The clustering rules of `clustering.py` restated plainly: every set's values kept
    eagerly, one union-find over Python lists, no shortcuts."""
    from ccv.identity.clustering import birth_dates_conflict

    def conflict(x, y):
        (lx, bx), (ly, by) = x, y
        if lx and ly and lx != ly:
            return True
        return any(birth_dates_conflict(a, b, gap) for a in bx for b in by)

    own = [({loyalty[i]} - {None}, {births[i]} - {None}) for i in range(n)]
    strong = [(w, k, a, b) for k, (a, b, w) in enumerate(edges) if w >= STRONG]
    component = list(range(n))  # plain connected components of the strong links
    for _ in range(n):
        for _, _, a, b in strong:
            component[a] = component[b] = min(component[a], component[b])
    groups = {}
    for i in range(n):
        groups.setdefault(component[i], []).append(i)
    parent, size, values, weak = list(range(n)), [1] * n, list(own), [False] * n
    crm_count = [int(c) for c in crm]  # CRM records per set: "on its own" counts only these

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    def union(a, b):
        if size[a] < size[b]:
            a, b = b, a
        parent[b], size[a] = a, size[a] + size[b]
        crm_count[a] += crm_count[b]
        values[a] = (values[a][0] | values[b][0], values[a][1] | values[b][1])

    broken = set()
    for root, members in groups.items():
        whole = tuple(set().union(*(own[m][side] for m in members)) for side in (0, 1))
        if len(whole[0]) > 1 or any(
            birth_dates_conflict(a, b, gap) for a in whole[1] for b in whole[1]
        ):
            broken.add(root)
        else:
            for m in members:
                parent[m] = root
            size[root], values[root] = len(members), whole
            crm_count[root] = sum(int(crm[m]) for m in members)
    rebuilt = [s for s in strong if component[s[2]] in broken]
    for _, _, a, b in sorted(rebuilt, key=lambda s: (-s[0], s[1])):  # strongest first
        a, b = find(a), find(b)
        if a != b and not conflict(values[a], values[b]):
            union(a, b)
    weak_links = sorted(
        ((w, k, a, b) for k, (a, b, w) in enumerate(edges) if w < STRONG),
        key=lambda s: (-s[0], s[1]),
    )
    for _, _, x, y in weak_links:
        a, b = find(x), find(y)
        lone_a = crm_count[a] == 1 and not weak[x]
        lone_b = crm_count[b] == 1 and not weak[y]
        if a == b or not (lone_a or lone_b):
            continue
        if (lone_a and weak[y]) or (lone_b and weak[x]) or conflict(values[a], values[b]):
            continue
        union(a, b)
        weak[x if lone_a else y] = True
    out = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return sorted(out.values())


def test_clustering_equals_the_plain_statement_of_its_rules_on_random_graphs():
    """Random graphs with guard conflicts, strong and weak links, ties in weight."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(5, 60))
        edges = [
            (int(a), int(b), float(rng.choice([2.0, 3.0, 4.5, 5.0, 6.0, 9.0])))
            for a, b in rng.integers(0, n, (int(rng.integers(1, 3 * n)), 2))
            if a != b
        ]
        loyalty = [rng.choice([None, None, None, "L1", "L2", "L3"]) for _ in range(n)]
        births = [
            rng.choice([None, None, "1980-01-02", "1980-02-01", "1990-05-05", "1970-07-07"])
            for _ in range(n)
        ]
        crm = [bool(rng.random() < 0.8) for _ in range(n)]
        got, _ = run(n, edges, loyalty, births, crm=crm)
        assert got == reference_clusters(n, edges, loyalty, births, crm), seed
