"""The Arrow paths of resolve give exactly what the pandas paths they replaced gave.

`read_frame` / `write_table` (frames.py), the array version of the deterministic links
(`resolve.link_pairs`), the per-distinct-date helpers and the vectorised cluster roots are
checked against straightforward reference implementations on data with the awkward cases:
NULLs, all-NULL columns, dates, shared keys with and without CRM records.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pandas.testing as pdt

from ccv.identity.clustering import Guards, _broken_components, _roots, birth_dates_conflict
from ccv.identity.frames import arrow_to_frame, read_arrow_by_range, read_frame, write_table
from ccv.identity.resolve import (
    LINK_KEYS,
    LINK_WEIGHTS,
    RULE_LABELS,
    blank_default_dates,
    date_texts,
    link_pairs,
    match_rule_codes,
)

QUERY = """
    select i::bigint as n, case when i % 3 = 0 then null else i end::bigint as n_null,
           i::integer as small, i % 2 = 0 as flag, case when i = 1 then null else i % 2 = 0 end
           as flag_null, 'v' || i as text, case when i % 2 = 0 then 'x' end as text_null,
           null::varchar as all_null, date '2000-01-01' + i::integer as day,
           case when i = 2 then null else date '1990-05-01' end as day_null,
           timestamp '2025-01-01 10:00:00' + i * interval 1 hour as at, i / 2 as ratio
    from range(5) t(i)
"""


def test_read_frame_gives_what_df_gives():
    con = duckdb.connect()
    expected = con.execute(QUERY).df()
    got = read_frame(con, QUERY)
    pdt.assert_frame_equal(got, expected)
    empty = "select null::varchar as s, 1::bigint as n, current_date as d from range(0)"
    pdt.assert_frame_equal(read_frame(con, empty), con.execute(empty).df())
    # parameters, and a connection that still holds an unfinished result
    con.execute("select 1").fetchone()
    got = read_frame(con, "select ? as p", ["x"])
    assert got["p"].tolist() == ["x"]


def test_read_arrow_by_range_gives_the_whole_query_in_order():
    con = duckdb.connect()
    ranged = f"select * from ({QUERY}) where n >= ? and n < ? order by n"
    whole = read_frame(con, f"select * from ({QUERY}) order by n")
    for step in (1, 2, 5, 10):  # ranges of one row, uneven ranges, one range
        pdt.assert_frame_equal(arrow_to_frame(read_arrow_by_range(con, ranged, 5, step)), whole)
    # no rows: one (empty) range, still with the columns and dtypes
    none = ranged.replace("where", "where n < 0 and")
    empty = arrow_to_frame(read_arrow_by_range(con, none, 0, 2))
    assert empty.empty and list(empty.columns) == list(whole.columns)


def test_write_table_keeps_types_and_values():
    con = duckdb.connect()
    frame = con.execute(QUERY).df()
    write_table(con, "t", frame)
    con.register("f", frame)
    con.execute("create table reference as select * from f")
    types = "select column_name, data_type from duckdb_columns() where table_name = ?"
    assert con.execute(types, ["t"]).fetchall() == con.execute(types, ["reference"]).fetchall()
    assert con.execute("select * from t except select * from reference").fetchall() == []
    assert con.execute("select count(*) from t").fetchone()[0] == 5


def _link_pairs_reference(records: pd.DataFrame) -> pd.DataFrame:
    """The pandas implementation `link_pairs` had before it worked on integer codes."""
    edges = []
    position = np.arange(len(records))
    is_crm = (records["record_kind"] == "customer").to_numpy()
    for column, rule in LINK_KEYS.items():
        keyed = records[column].notna().to_numpy()
        frame = pd.DataFrame(
            {"key": records[column].to_numpy()[keyed], "pos": position[keyed], "crm": is_crm[keyed]}
        ).sort_values(["key", "crm", "pos"], ascending=[True, False, True])
        centre = frame.groupby("key", sort=False)["pos"].transform("first")
        centre_is_crm = pd.Series(is_crm[centre.to_numpy()], index=frame.index)
        star = frame.assign(left=centre, rule=rule)
        star = star[(star["pos"] != star["left"]) & ~(star["crm"] & centre_is_crm)]
        edges.append(star[["left", "pos", "rule"]].rename(columns={"pos": "right"}))
    crm = records[is_crm]
    crm_pos = pd.Series(position[is_crm], index=[crm["source"], crm["source_record_id"]])
    refs = records[records["ref_record_id"].notna()]
    if len(refs):
        target = crm_pos.reindex(list(zip(refs["ref_source"], refs["ref_record_id"], strict=True)))
        ref_edges = pd.DataFrame(
            {"left": target.to_numpy(), "right": position[refs.index], "rule": "customer_record_id"}
        ).dropna()
        edges.append(ref_edges.astype({"left": "int64"}))
    return pd.concat(edges, ignore_index=True).astype({"left": "int64", "right": "int64"})


def _records(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["customer", "order", "survey"], size=n, p=[0.4, 0.4, 0.2])
    sources = np.where(kinds == "customer", rng.choice(["crm1", "crm2"], size=n), "web")

    def keys(prefix: str, distinct: int, missing: float) -> list:
        values = [f"{prefix}{v}" for v in rng.integers(0, distinct, size=n)]
        return [None if rng.random() < missing else v for v in values]

    ids = [f"r{i:04d}" for i in range(n)]
    refs = [
        ids[j] if kinds[i] != "customer" and rng.random() < 0.3 else None
        for i, j in enumerate(rng.integers(0, n, size=n))
    ]
    ref_source = [sources[ids.index(r)] if r is not None else None for r in refs]
    # a reference to a record that is not a CRM record (or does not exist) links nothing
    refs = [r if r is None or rng.random() < 0.9 else "missing" for r in refs]
    return pd.DataFrame(
        {
            "record_kind": kinds,
            "source": sources,
            "source_record_id": ids,
            "std_email_key": keys("e", n // 3, 0.3),
            "std_phone": keys("+44", n // 4, 0.4),
            "std_loyalty_id": keys("L", n // 5, 0.7),
            "ref_source": ref_source,
            "ref_record_id": refs,
        }
    )


def test_link_pairs_gives_the_reference_edges_in_the_same_order():
    for seed in range(5):
        records = _records(400, seed)
        got = link_pairs(records)
        expected = _link_pairs_reference(records)
        assert len(got) > 100
        # same rows in the same order: the order decides which link a guard cuts first
        assert (
            got[["left", "right"]].to_numpy().tolist()
            == expected[["left", "right"]].to_numpy().tolist()
        )
        assert got["rule"].astype(str).tolist() == expected["rule"].astype(str).tolist()


def test_match_rules_give_the_first_edge_rule_per_record():
    records = _records(400, 3)
    edges = pd.concat(
        [
            link_pairs(records),
            pd.DataFrame({"left": [0, 5], "right": [7, 399], "rule": ["email_and_name", "x"]}),
        ],
        ignore_index=True,
    )
    got = np.asarray(RULE_LABELS, dtype=object)[match_rule_codes(len(records), edges)]
    # the pandas grouping it replaces
    rules = edges["rule"].where(edges["rule"].isin(LINK_WEIGHTS), "probabilistic")
    expected = pd.Series(records.index.map(rules.groupby(edges["right"]).first())).fillna("self")
    assert got.tolist() == expected.tolist()
    assert {"self", "email", "customer_record_id"} <= set(got)
    assert got[399] == "probabilistic" or 399 in set(link_pairs(records)["right"])


def test_date_helpers_match_string_conversion():
    dates = pd.Series(
        pd.to_datetime(["1980-01-01", None, "1900-01-01", "1975-06-30", "1980-01-01"]).astype(
            "datetime64[us]"
        )
    )
    assert (
        date_texts(dates).tolist()
        == dates.astype("string").to_numpy(dtype=object, na_value=None).tolist()
    )
    blanked = blank_default_dates(dates, min_records=2)
    # 1980-01-01 is held by two records (>= min_records): a default; 1900-01-01 a filler
    assert blanked.isna().tolist() == [True, True, True, False, True]
    assert blank_default_dates(pd.Series([], dtype="datetime64[us]")).empty


def test_roots_are_what_find_returns():
    rng = np.random.default_rng(1)
    parent = np.arange(200)
    for _ in range(150):  # a random forest: each node points at a smaller one
        child = int(rng.integers(1, 200))
        parent[child] = int(rng.integers(0, child))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    assert _roots(parent).tolist() == [find(i) for i in range(200)]


def test_broken_components_match_the_pairwise_definition():
    rng = np.random.default_rng(2)
    n = 300
    labels = rng.integers(0, 60, size=n)
    loyalty = np.array([None if rng.random() < 0.7 else f"L{rng.integers(0, 4)}" for _ in range(n)])
    base = dt.date(1980, 3, 4)
    births = np.array(
        [
            None
            if rng.random() < 0.5
            else (base + dt.timedelta(days=int(rng.choice([0, 1, 400, 3000])))).isoformat()
            for _ in range(n)
        ],
        dtype=object,
    )
    guards = Guards(loyalty_ids=loyalty, birth_dates=births)
    expected = []
    for label in range(60):
        members = labels == label
        ids = {v for v in loyalty[members] if v is not None}
        days = sorted({v for v in births[members] if v is not None})
        conflict = any(
            birth_dates_conflict(a, b, guards.max_birth_gap_days)
            for i, a in enumerate(days)
            for b in days[i + 1 :]
        )
        if len(ids) > 1 or conflict:
            expected.append(label)
    got = _broken_components(labels, guards)
    assert got.tolist() == expected
    assert 0 < len(expected) < 60


def test_cluster_links_components_are_those_of_every_link_used_or_refused():
    """`cluster_links` names each record's component over all links from its clusters and the
    links clustering left unused: the same as connected components over every link."""
    from ccv.config import IdentityConfig
    from ccv.identity.clustering import connected_components
    from ccv.identity.matching import MatchResult
    from ccv.identity.resolve import cluster_links

    records = _records(400, 5)
    rng = np.random.default_rng(5)
    days = rng.integers(0, 20000, size=len(records))  # far-apart birth dates: guards refuse
    records["std_birth_date"] = (
        pd.to_datetime(np.where(rng.random(len(records)) < 0.5, days, -1), unit="D")
        .astype("datetime64[us]")
        .where(days % 2 == 0)
    )
    crm = np.flatnonzero(records["record_kind"] == "customer")
    left, right = rng.choice(crm, 150), rng.choice(crm, 150)
    keep = left < right
    links = pd.DataFrame(
        {
            "left": left[keep],
            "right": right[keep],
            "weight": rng.uniform(5, 30, keep.sum()),
            "probability": 0.99,
            "rule": "email_and_name",
        }
    )
    matched = MatchResult(links, None, len(links), pd.DataFrame())
    identity = IdentityConfig(guards={"distinct_loyalty_ids": True})
    labels, used, components = cluster_links(records, matched, identity)
    every = pd.concat([link_pairs(records), links], ignore_index=True)
    expected = connected_components(
        len(records), every["left"].to_numpy(np.int64), every["right"].to_numpy(np.int64)
    )
    refused = len(every) - len(used)
    assert refused > 0  # some links were refused: the components reach past the clusters
    assert len(np.unique(components)) < len(np.unique(labels))
    # the same partition (labels differ)
    assert pd.crosstab(components, expected).astype(bool).sum(axis=1).eq(1).all()
    assert pd.crosstab(expected, components).astype(bool).sum(axis=1).eq(1).all()
