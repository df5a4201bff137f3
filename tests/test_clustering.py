"""Clustering guards: no two loyalty ids or far-apart birth dates per customer, no weak chains."""

import numpy as np
import pandas as pd

from ccv.identity.clustering import Guards, cluster

STRONG = 5.0


def run(n, edges, loyalty=None, births=None, check_loyalty=True):
    frame = pd.DataFrame(edges, columns=["left", "right", "weight"])
    guards = Guards(
        loyalty_ids=np.array(loyalty or [None] * n, dtype=object),
        birth_dates=np.array(births or [None] * n, dtype=object),
        check_loyalty=check_loyalty,
    )
    labels, used = cluster(n, frame, guards, strong=STRONG)
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


def test_weak_link_respects_the_guards():
    groups, _ = run(3, [(0, 1, 9.0), (1, 2, 3.0)], loyalty=["L1", None, "L2"])
    assert groups == [[0, 1], [2]]
