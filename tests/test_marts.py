"""Tests for the marts layer: rfm_scores, rfm_segment_map, loyalty_segments, customer_360.

The core tables (customers, orders, survey_responses) are created by hand in an in-memory DuckDB
from small inline rows, then only the marts layer (and its checks) is built.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ccv.analytics.customer_value import build_customer_value
from ccv.analytics.segment_history import ensure_segment_history
from ccv.warehouse import models
from ccv.warehouse.models import DataCheckError

AS_OF = date(2025, 6, 30)  # window of 24 months = (2023-06-30, 2025-06-30]

CORE_DDL = [
    """
    create table customers (
        customer_id varchar, first_name varchar, last_name varchar, full_name varchar,
        email varchar, phone varchar, birth_date date, gender varchar, address_line varchar,
        city varchar, postcode varchar, country varchar, loyalty_id varchar,
        email_opt_in boolean, sms_opt_in boolean, first_seen_at timestamp,
        source_count integer, record_count integer, sources varchar[]
    )
    """,
    """
    create table orders (
        order_key varchar, order_id varchar, source varchar, customer_id varchar,
        channel varchar, store_id varchar, ordered_at timestamp, ordered_on date,
        status varchar, gross_amount decimal(18, 2), discount_amount decimal(18, 2),
        net_amount decimal(18, 2), revenue_amount decimal(18, 2), currency varchar
    )
    """,
    """
    create table survey_responses (
        response_key varchar, response_id varchar, source varchar, customer_id varchar,
        submitted_at timestamp, nps integer, csat integer, comment varchar
    )
    """,
    # sql/core/order_lines.sql; the pipeline guarantees it exists (possibly empty)
    """
    create table order_lines (
        order_line_key varchar, order_key varchar, order_id varchar, line_number integer,
        sku varchar, product_name varchar, category varchar, channel varchar, status varchar,
        quantity integer, unit_price decimal(18, 2), line_amount decimal(18, 2),
        ordered_at timestamp, ordered_on date
    )
    """,
]


# ---------------------------------------------------------------- helpers


def new_con(
    as_of: date = AS_OF,
    window_months: int = 24,
    lapsed_after_days: int = 365,
    **extra_variables: int,
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for ddl in CORE_DDL:
        con.execute(ddl)
    con.execute("set variable as_of_date = ?", [as_of])
    con.execute("set variable rfm_window_months = ?", [window_months])
    con.execute("set variable lapsed_after_days = ?", [lapsed_after_days])
    for name, value in extra_variables.items():
        con.execute(f"set variable {name} = ?", [value])
    ensure_segment_history(con)
    return con


def build_marts(con: duckdb.DuckDBPyConnection, **kwargs) -> list[str]:
    """What the pipeline does from the hand-made core tables on: the core models purchase_days
    and customer_order_stats (over `orders` and `order_lines`), customer_value, then the
    marts."""
    as_of = con.execute("select cast(getvariable('as_of_date') as date)").fetchone()[0]
    models.build_models(con, "core", ["purchase_days", "customer_order_stats"])
    build_customer_value(con, as_of, horizon_months=12)
    return models.build(con, layers=("marts",), **kwargs)


def add_customers(con: duckdb.DuckDBPyConnection, *customer_ids: str) -> None:
    con.executemany(
        "insert into customers values (?, ?, 'Tester', ?, ?, '+447700900000', date '1990-01-01',"
        " 'f', '1 High St', 'Leeds', 'LS1 1AA', 'GB', ?, true, false,"
        " timestamp '2020-01-01 00:00:00', 1, 1, ['crm'])",
        [
            [cid, cid.title(), f"{cid.title()} Tester", f"{cid}@example.com", f"L-{cid}"]
            for cid in customer_ids
        ],
    )


def add_orders(con: duckdb.DuckDBPyConnection, *rows: tuple) -> None:
    """rows: (customer_id, order_id, ordered_on, status, net, channel)."""
    params = []
    for customer_id, order_id, ordered_on, status, net, channel in rows:
        net = Decimal(net)
        revenue = {"completed": net, "returned": -net}.get(status, Decimal("0.00"))
        source = "web_shop" if channel == "web" else "pos"
        params.append(
            [
                f"{source}:{order_id}",
                order_id,
                source,
                customer_id,
                channel,
                None if channel == "web" else "S01",
                datetime.combine(ordered_on, datetime.min.time()) + timedelta(hours=12),
                ordered_on,
                status,
                net,
                Decimal("0.00"),
                net,
                revenue,
                "GBP",
            ]
        )
    con.executemany("insert into orders values (" + ", ".join("?" * 14) + ")", params)


def completed_orders(customer_id: str, count: int, last_on: date, net: str = "10.00") -> list:
    """`count` completed web orders, 30 days apart, the last one on `last_on`."""
    days = [timedelta(days=30 * i) for i in range(count)]
    return [
        (customer_id, f"{customer_id}-{i}", last_on - d, "completed", net, "web")
        for i, d in enumerate(days)
    ]


def add_responses(con: duckdb.DuckDBPyConnection, *rows: tuple) -> None:
    """rows: (customer_id, response_id, submitted_at, nps, csat)."""
    con.executemany(
        "insert into survey_responses values (?, ?, 'survey_tool', ?, ?, ?, ?, null)",
        [[f"survey_tool:{rid}", rid, cid, at, nps, csat] for cid, rid, at, nps, csat in rows],
    )


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    result = con.execute(sql, params or [])
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, values, strict=True)) for values in result.fetchall()]


def by_id(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, dict]:
    return {r["customer_id"]: r for r in rows(con, f"select * from {table}")}


# ---------------------------------------------------------------- the shared scenario


@pytest.fixture(scope="module")
def scenario() -> duckdb.DuckDBPyConnection:
    con = new_con()
    add_customers(
        con,
        # rfm / customer_360 edge cases
        "refund", "return", "one", "future", "edge", "old", "prospect", "cancelled_only",
        # loyalty cells and stages
        "advocate", "loyal_passive", "repeat_promoter", "latent", "detractor",
        "frequent_no_survey", "csat_only", "lapsed_in_window", "recency_365", "recency_366",
        "repeat_lifetime", "prospect_promoter", "latest",
        # nps boundaries (prospects, so only the survey matters)
        "nps_0", "nps_6", "nps_7", "nps_8", "nps_9", "nps_10",
    )  # fmt: skip
    add_orders(
        con,
        ("refund", "o1", date(2025, 6, 1), "completed", "100.00", "web"),
        ("refund", "o2", date(2025, 5, 1), "refunded", "50.00", "web"),
        ("refund", "o3", date(2025, 4, 1), "cancelled", "70.00", "web"),
        ("return", "r1", date(2025, 3, 1), "completed", "200.00", "store"),
        ("return", "r2", date(2025, 3, 10), "returned", "50.00", "store"),
        ("one", "x1", date(2024, 12, 31), "completed", "40.00", "web"),
        ("future", "f1", date(2025, 5, 1), "completed", "30.00", "web"),
        ("future", "f2", date(2025, 7, 15), "completed", "500.00", "store"),
        ("edge", "e0", date(2023, 6, 30), "completed", "999.00", "web"),
        ("edge", "e1", date(2023, 7, 1), "completed", "10.00", "web"),
        ("edge", "e2", date(2025, 6, 30), "completed", "20.00", "store"),
        ("old", "p1", date(2022, 1, 15), "completed", "80.00", "web"),
        ("cancelled_only", "c1", date(2025, 6, 1), "cancelled", "60.00", "web"),
        (None, "anon1", date(2025, 6, 1), "completed", "15.00", "store"),
        ("ghost", "g1", date(2025, 6, 1), "completed", "25.00", "web"),
        *completed_orders("advocate", 4, date(2025, 6, 20)),
        *completed_orders("loyal_passive", 4, date(2025, 6, 20)),
        *completed_orders("repeat_promoter", 2, date(2025, 6, 20)),
        *completed_orders("latent", 1, date(2025, 6, 20)),
        *completed_orders("detractor", 1, date(2025, 6, 20)),
        *completed_orders("frequent_no_survey", 3, date(2025, 6, 20)),
        *completed_orders("csat_only", 2, date(2025, 6, 20)),
        *completed_orders("lapsed_in_window", 5, date(2024, 5, 26)),  # 400 days before as_of
        *completed_orders("recency_365", 1, date(2024, 6, 30)),
        *completed_orders("recency_366", 1, date(2024, 6, 29)),
        ("repeat_lifetime", "rl1", date(2023, 1, 1), "completed", "10.00", "web"),
        ("repeat_lifetime", "rl2", date(2025, 6, 1), "completed", "10.00", "web"),
    )
    add_responses(
        con,
        ("advocate", "s1", datetime(2025, 6, 1, 9), 10, 5),
        ("loyal_passive", "s2", datetime(2025, 6, 1, 9), 8, 4),
        ("repeat_promoter", "s3", datetime(2025, 6, 1, 9), 9, None),
        ("latent", "s4", datetime(2025, 6, 1, 9), 9, None),
        ("detractor", "s5", datetime(2025, 6, 1, 9), 6, 2),
        ("csat_only", "s6", datetime(2025, 6, 1, 9), None, 5),
        ("lapsed_in_window", "s7", datetime(2025, 6, 1, 9), 10, None),
        ("prospect_promoter", "s8", datetime(2025, 6, 1, 9), 10, None),
        ("nps_0", "b0", datetime(2025, 6, 1, 9), 0, None),
        ("nps_6", "b6", datetime(2025, 6, 1, 9), 6, None),
        ("nps_7", "b7", datetime(2025, 6, 1, 9), 7, None),
        ("nps_8", "b8", datetime(2025, 6, 1, 9), 8, None),
        ("nps_9", "b9", datetime(2025, 6, 1, 9), 9, None),
        ("nps_10", "b10", datetime(2025, 6, 1, 9), 10, None),
        ("latest", "l1", datetime(2025, 1, 1, 9), 10, 5),
        ("latest", "l2", datetime(2025, 3, 1, 9), 3, None),
        ("latest", "l3", datetime(2025, 6, 30, 18), None, 2),  # on the as_of day: counts
        ("latest", "l4", datetime(2025, 7, 1, 9), 9, 4),  # after as_of: ignored
        (None, "anon_s", datetime(2025, 6, 1, 9), 0, 1),
    )
    build_marts(con)  # raises DataCheckError if a mart check fails
    yield con
    con.close()


@pytest.fixture(scope="module")
def rfm(scenario) -> dict[str, dict]:
    return by_id(scenario, "rfm_scores")


@pytest.fixture(scope="module")
def loyalty(scenario) -> dict[str, dict]:
    return by_id(scenario, "loyalty_segments")


@pytest.fixture(scope="module")
def c360(scenario) -> dict[str, dict]:
    return by_id(scenario, "customer_360")


# ---------------------------------------------------------------- rfm_scores: measures


def test_refund_and_cancellation_count_neither_as_order_nor_revenue(rfm):
    # o2 (refunded) and o3 (cancelled) have revenue_amount 0 and are not completed: only o1 counts.
    r = rfm["refund"]
    assert (r["frequency"], r["monetary"], r["avg_order_value"]) == (1, Decimal("100.00"), 100)
    assert r["first_order_on"] == r["last_order_on"] == date(2025, 6, 1)
    assert r["recency_days"] == 29  # 2025-06-01 -> 2025-06-30


def test_store_return_subtracts_from_monetary_but_is_not_an_order(rfm):
    # 200.00 sale minus the 50.00 return transaction; the return is neither an order nor the
    # last order date.
    r = rfm["return"]
    assert (r["frequency"], r["monetary"]) == (1, Decimal("150.00"))
    assert r["last_order_on"] == date(2025, 3, 1)


def test_one_order_customer(rfm):
    # a single 40.00 order 181 days before as_of: frequency 1, AOV = the order itself.
    r = rfm["one"]
    assert (r["frequency"], r["monetary"], r["avg_order_value"]) == (1, Decimal("40.00"), 40)
    assert r["recency_days"] == 181


def test_order_after_as_of_is_ignored(rfm, c360):
    # f2 (2025-07-15) is after as_of 2025-06-30: only f1 counts, for rfm and lifetime stats alike.
    assert (rfm["future"]["frequency"], rfm["future"]["monetary"]) == (1, Decimal("30.00"))
    assert rfm["future"]["last_order_on"] == date(2025, 5, 1)
    assert c360["future"]["lifetime_orders"] == 1
    assert c360["future"]["lifetime_revenue"] == Decimal("30.00")
    assert c360["future"]["channel_mix"] == "online_only"  # the later store order is ignored


def test_window_excludes_its_start_day_and_includes_as_of(rfm, c360):
    # window = (2023-06-30, 2025-06-30]: e0 on 2023-06-30 is out, e1 on 2023-07-01 and e2 on the
    # as_of day are in; lifetime stats still see all three.
    r = rfm["edge"]
    assert (r["frequency"], r["monetary"]) == (2, Decimal("30.00"))
    assert (r["first_order_on"], r["last_order_on"], r["recency_days"]) == (
        date(2023, 7, 1),
        date(2025, 6, 30),
        0,
    )
    assert (c360["edge"]["lifetime_orders"], c360["edge"]["lifetime_revenue"]) == (
        3,
        Decimal("1029.00"),
    )


def test_customers_without_completed_order_in_window_are_absent(rfm):
    # old: only ordered before the window; prospect: never ordered; cancelled_only: no completed
    # order; ghost: not in customers; the anonymous receipt has no customer at all.
    for customer_id in ("old", "prospect", "cancelled_only", "ghost"):
        assert customer_id not in rfm
    assert None not in rfm


def test_rfm_cell_and_segment_follow_the_scores_and_the_map(scenario):
    # every row: cell = r || f || m and segment = map[(r, floor((f + m) / 2))].
    mismatches = rows(
        scenario,
        """
        select s.*
        from rfm_scores s
        join rfm_segment_map m
            on m.r_score = s.r_score and m.fm_score = (s.f_score + s.m_score) // 2
        where s.rfm_cell <> concat(s.r_score, s.f_score, s.m_score)
           or s.rfm_segment <> m.rfm_segment
           or s.fm_score <> m.fm_score
        """,
    )
    assert mismatches == []
    assert scenario.execute("select count(*) from rfm_scores").fetchone()[0] == len(
        rows(scenario, "select * from rfm_scores where rfm_segment is not null")
    )


# ---------------------------------------------------------------- rfm_scores: score binning


def test_distinct_values_bin_into_quintiles_and_diagonal_segments():
    # customer k (1..10) has k orders of 10.00, the last one 10 - k days before as_of, so k is
    # better than k - 1 on R, F and M alike. 10 distinct values -> quintiles of two customers:
    # score = 1 + floor(5 * (k - 1) / 9), capped at 5 -> 1,1,2,2,3,3,4,4,5,5.
    con = new_con()
    ids = [f"k{k:02d}" for k in range(1, 11)]
    add_customers(con, *ids)
    for k, cid in enumerate(ids, start=1):
        add_orders(con, *completed_orders(cid, k, AS_OF - timedelta(days=10 - k)))
    build_marts(con)
    got = {r["customer_id"]: r for r in rows(con, "select * from rfm_scores")}
    expected_scores = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [got[cid]["r_score"] for cid in ids] == expected_scores
    assert [got[cid]["f_score"] for cid in ids] == expected_scores
    assert [got[cid]["m_score"] for cid in ids] == expected_scores
    # the diagonal of the segment map, read end to end through rfm_scores
    assert [got[cid]["rfm_segment"] for cid in ids] == [
        "Lost", "Lost", "Hibernating", "Hibernating", "Need Attention", "Need Attention",
        "Loyal Customers", "Loyal Customers", "Champions", "Champions",
    ]  # fmt: skip
    assert got["k10"]["rfm_cell"] == "555"
    assert got["k01"]["rfm_cell"] == "111"


def test_ties_get_equal_scores():
    # t1 and t2 are identical (1 order of 10.00 on 2025-06-01), so they must share every score;
    # ntile(5) over 5 rows would hand them 1 and 2. Ties take the score of the lowest member
    # (rank 1 -> 1), and the next customer keeps its own rank (t3 has rank 3 -> 3, not 2):
    # n = 5, score = 1 + floor(5 * (rank - 1) / 4) -> ranks 1,1,3,4,5 give 1,1,3,4,5.
    con = new_con()
    add_customers(con, "t1", "t2", "t3", "t4", "t5")
    add_orders(
        con,
        *completed_orders("t1", 1, date(2025, 6, 1)),
        *completed_orders("t2", 1, date(2025, 6, 1)),
        *completed_orders("t3", 2, date(2025, 6, 10)),
        *completed_orders("t4", 3, date(2025, 6, 20)),
        *completed_orders("t5", 5, date(2025, 6, 29)),
    )
    build_marts(con)
    got = {r["customer_id"]: r["rfm_cell"] for r in rows(con, "select * from rfm_scores")}
    assert got == {"t1": "111", "t2": "111", "t3": "333", "t4": "444", "t5": "555"}


def test_one_time_buyers_tied_at_the_bottom_score_f1_and_a_top_tie_scores_4():
    # frequencies 1,1,1,2,3,3 (n = 6): the three one-time buyers tie at rank 1 -> F = 1 (with
    # cume_dist binning they would get ceil(5 * 3/6) = 3). f2 has rank 4 -> 1 + floor(15/5) = 4;
    # the top pair has rank 5 -> 1 + floor(20/5) = 5. A top tie can miss 5, though: with
    # frequencies 1,2,3,3 (n = 4) the pair has rank 3 -> 1 + floor(10/3) = 4.
    con = new_con()
    add_customers(con, "a1", "a2", "a3", "f2", "f3a", "f3b")
    add_orders(
        con,
        *completed_orders("a1", 1, date(2025, 6, 1)),
        *completed_orders("a2", 1, date(2025, 6, 2)),
        *completed_orders("a3", 1, date(2025, 6, 3)),
        *completed_orders("f2", 2, date(2025, 6, 4)),
        *completed_orders("f3a", 3, date(2025, 6, 5)),
        *completed_orders("f3b", 3, date(2025, 6, 6)),
    )
    build_marts(con)
    got = {r["customer_id"]: r["f_score"] for r in rows(con, "select * from rfm_scores")}
    assert got == {"a1": 1, "a2": 1, "a3": 1, "f2": 4, "f3a": 5, "f3b": 5}

    con = new_con()
    add_customers(con, "b1", "b2", "b3a", "b3b")
    add_orders(
        con,
        *completed_orders("b1", 1, date(2025, 6, 1)),
        *completed_orders("b2", 2, date(2025, 6, 1)),
        *completed_orders("b3a", 3, date(2025, 6, 1)),
        *completed_orders("b3b", 3, date(2025, 6, 1)),
    )
    build_marts(con)
    got = {r["customer_id"]: r["f_score"] for r in rows(con, "select * from rfm_scores")}
    assert got == {"b1": 1, "b2": 2, "b3a": 4, "b3b": 4}


def test_single_scored_customer_scores_1_everywhere():
    # one customer = everybody tied: nobody is strictly worse, so 1/1/1 (documented edge case).
    con = new_con()
    add_customers(con, "solo")
    add_orders(con, *completed_orders("solo", 3, date(2025, 6, 29)))
    build_marts(con)
    (only,) = rows(con, "select rfm_cell, rfm_segment from rfm_scores")
    assert only == {"rfm_cell": "111", "rfm_segment": "Lost"}


# ---------------------------------------------------------------- rfm_segment_map


@pytest.mark.parametrize(
    ("r_score", "fm_score", "segment"),
    [
        (5, 5, "Champions"),  # best on everything
        (5, 4, "Champions"),
        (4, 5, "Loyal Customers"),  # buy a lot, a little less recently
        (3, 4, "Loyal Customers"),
        (5, 1, "New Customers"),  # just bought, once and small
        (4, 1, "Promising"),
        (5, 3, "Potential Loyalists"),
        (4, 2, "Potential Loyalists"),
        (3, 3, "Need Attention"),
        (3, 1, "About to Sleep"),
        (2, 3, "At Risk"),  # used to buy well, not recently
        (1, 4, "At Risk"),
        (1, 5, "Can't Lose Them"),  # 155: best F&M but long gone -> win back, not "Lost"
        (2, 5, "Can't Lose Them"),
        (2, 2, "Hibernating"),
        (2, 1, "Hibernating"),
        (1, 2, "Lost"),
        (1, 1, "Lost"),  # 111: worst on everything
    ],
)
def test_segment_map_examples(scenario, r_score, fm_score, segment):
    got = scenario.execute(
        "select rfm_segment from rfm_segment_map where r_score = ? and fm_score = ?",
        [r_score, fm_score],
    ).fetchall()
    assert got == [(segment,)]


def test_segment_map_has_25_cells_and_11_segments(scenario):
    # a full 5 x 5 grid, each cell once, using exactly the 11 standard names.
    assert scenario.execute("select count(*) from rfm_segment_map").fetchone()[0] == 25
    names = {r[0] for r in scenario.execute("select rfm_segment from rfm_segment_map").fetchall()}
    assert names == {
        "Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising",
        "Need Attention", "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
    }  # fmt: skip


def test_fm_score_is_the_average_of_f_and_m_rounded_down():
    # 5 customers with distinct F (1..5) and M in the opposite order (one big order vs many small
    # ones): (f + m) stays 6 for everyone, so fm = 3; r follows the order date.
    con = new_con()
    ids = ["g1", "g2", "g3", "g4", "g5"]
    add_customers(con, *ids)
    for k, cid in enumerate(ids, start=1):
        each = Decimal("600.00") / k / k  # total k * each = 600 / k: decreasing with k
        add_orders(con, *completed_orders(cid, k, date(2025, 6, 20 + k), f"{each:.2f}"))
    build_marts(con)
    got = rows(con, "select customer_id, f_score, m_score, fm_score from rfm_scores")
    assert {(r["f_score"], r["m_score"], r["fm_score"]) for r in got} == {
        (1, 5, 3),
        (2, 4, 3),
        (3, 3, 3),
        (4, 2, 3),
        (5, 1, 3),
    }


# ---------------------------------------------------------------- loyalty_segments


def test_nps_categories_on_the_boundaries(loyalty):
    # 0-6 detractor, 7-8 passive, 9-10 promoter.
    assert {cid: loyalty[cid]["nps_category"] for cid in loyalty if cid.startswith("nps_")} == {
        "nps_0": "detractor",
        "nps_6": "detractor",
        "nps_7": "passive",
        "nps_8": "passive",
        "nps_9": "promoter",
        "nps_10": "promoter",
    }


def test_latest_non_null_response_up_to_as_of_wins(loyalty):
    # l4 (after as_of) is ignored; l3 on the as_of day is the latest but has no NPS, so the NPS
    # comes from l2 (3 -> detractor) and the CSAT from l3 (2). Three responses count.
    r = loyalty["latest"]
    assert (r["latest_nps"], r["latest_csat"], r["nps_category"]) == (3, 2, "detractor")
    assert (r["response_count"], r["has_survey"]) == (3, True)


@pytest.mark.parametrize(
    ("customer_id", "cell", "behaviour_only", "stage"),
    [
        # 4 recent orders + promoter: high behaviour, promoter -> true loyalty; 4 >= 4 -> advocate
        ("advocate", "true_loyalty", False, "advocate"),
        # same behaviour, passive (8) -> spurious; loyal stage without the promoter answer
        ("loyal_passive", "spurious_loyalty", False, "loyal"),
        # 2 recent orders + promoter -> true loyalty, but 2 < 4 -> only repeat_buyer
        ("repeat_promoter", "true_loyalty", False, "repeat_buyer"),
        # 1 order + promoter -> latent loyalty
        ("latent", "latent_loyalty", False, "first_time_buyer"),
        # 1 order + detractor (6) -> no loyalty
        ("detractor", "no_loyalty", False, "first_time_buyer"),
        # 3 recent orders, no survey: attitude not assumed -> spurious, flagged; 3 < 4 -> repeat
        ("frequent_no_survey", "spurious_loyalty", True, "repeat_buyer"),
        # only a CSAT answer: has a survey but no NPS -> still classified on behaviour alone
        ("csat_only", "spurious_loyalty", True, "repeat_buyer"),
        # 1 order, no survey -> no loyalty, flagged
        ("one", "no_loyalty", True, "first_time_buyer"),
        # 5 orders but last one 400 days ago: lapsed -> low behaviour; promoter -> latent;
        # lapsed overrides advocate
        ("lapsed_in_window", "latent_loyalty", False, "lapsed"),
        # orders only before the window -> lapsed
        ("old", "no_loyalty", True, "lapsed"),
        # 365 days is not "more than 365" -> still a first-time buyer; 366 is lapsed
        ("recency_365", "no_loyalty", True, "first_time_buyer"),
        ("recency_366", "no_loyalty", True, "lapsed"),
        # 2 lifetime orders, 1 in the window: repeat buyer stage, but low behaviour
        ("repeat_lifetime", "no_loyalty", True, "repeat_buyer"),
        # never bought: prospect, whatever the survey says (promoter -> latent loyalty)
        ("prospect", "no_loyalty", True, "prospect"),
        ("prospect_promoter", "latent_loyalty", False, "prospect"),
        ("cancelled_only", "no_loyalty", True, "prospect"),
    ],
)
def test_loyalty_cells_and_stages(loyalty, customer_id, cell, behaviour_only, stage):
    r = loyalty[customer_id]
    assert (r["loyalty_cell"], r["is_cell_from_behaviour_only"], r["loyalty_stage"]) == (
        cell,
        behaviour_only,
        stage,
    )


def test_behaviour_flags(loyalty):
    # repeat buyer = >= 2 completed orders in the window; lapsed overrides high behaviour.
    flags = {
        cid: (r["is_repeat_buyer"], r["is_lapsed"], r["behavioural_loyalty"])
        for cid, r in loyalty.items()
    }
    assert flags["advocate"] == (True, False, "high")
    assert flags["lapsed_in_window"] == (True, True, "low")
    assert flags["repeat_lifetime"] == (False, False, "low")
    assert flags["old"] == (False, True, "low")
    assert flags["prospect"] == (False, False, "low")  # never bought: not lapsed


def test_survey_columns_for_customers_without_responses(loyalty):
    # no response -> 0 responses, no survey, NULL answers; the rfm segment of a prospect is NULL.
    r = loyalty["prospect"]
    assert (r["response_count"], r["has_survey"], r["latest_nps"], r["latest_csat"]) == (
        0,
        False,
        None,
        None,
    )
    assert r["nps_category"] is None
    assert r["rfm_segment"] is None
    assert loyalty["csat_only"]["has_survey"] is True


def test_loyal_threshold_can_be_set_by_variable():
    # with loyal_min_orders = 3, three recent orders make a customer 'loyal' instead of repeat.
    con = new_con(loyal_min_orders=3)
    add_customers(con, "three")
    add_orders(con, *completed_orders("three", 3, date(2025, 6, 20)))
    build_marts(con)
    assert con.execute("select loyalty_stage from loyalty_segments").fetchall() == [("loyal",)]


# ---------------------------------------------------------------- customer_360


def test_customer_360_has_exactly_one_row_per_customer(scenario):
    # every customer, including prospects, and nobody else (not 'ghost', not the anonymous receipt)
    counts = scenario.execute(
        "select count(*), count(distinct customer_id) from customer_360"
    ).fetchone()
    assert counts == (27, 27)
    assert counts[0] == scenario.execute("select count(*) from customers").fetchone()[0]


def test_prospect_is_present_with_empty_stats(c360):
    # no orders: zero counts and revenue, NULL dates / channel mix / rfm, stage prospect.
    r = c360["prospect"]
    assert (r["lifetime_orders"], r["lifetime_revenue"], r["web_orders"], r["store_orders"]) == (
        0,
        Decimal("0.00"),
        0,
        0,
    )
    assert r["first_order_on"] is r["last_order_on"] is r["channel_mix"] is None
    assert r["rfm_segment"] is r["r_score"] is r["monetary"] is None
    assert r["loyalty_stage"] == "prospect"
    assert (r["full_name"], r["sources"]) == ("Prospect Tester", ["crm"])  # golden attributes


def test_lifetime_stats_and_channel_mix(c360):
    # refund: only o1 completes (web) -> online_only, revenue 100; return: store sale minus the
    # return -> store_only, 150; edge: web e0 + e1 and store e2 -> omnichannel.
    refund, ret, edge = c360["refund"], c360["return"], c360["edge"]
    assert (refund["lifetime_orders"], refund["lifetime_revenue"], refund["channel_mix"]) == (
        1,
        Decimal("100.00"),
        "online_only",
    )
    assert (ret["store_orders"], ret["store_revenue"], ret["web_revenue"], ret["channel_mix"]) == (
        1,
        Decimal("150.00"),
        Decimal("0.00"),
        "store_only",
    )
    assert (edge["web_orders"], edge["store_orders"], edge["channel_mix"]) == (2, 1, "omnichannel")
    assert (edge["web_revenue"], edge["store_revenue"]) == (Decimal("1009.00"), Decimal("20.00"))
    assert (edge["first_order_on"], edge["last_order_on"]) == (date(2023, 6, 30), date(2025, 6, 30))
    # cancelled only: no completed order, no revenue, no channel
    assert (c360["cancelled_only"]["lifetime_orders"], c360["cancelled_only"]["channel_mix"]) == (
        0,
        None,
    )


def test_customer_360_carries_rfm_and_loyalty_columns(scenario):
    # the wide table repeats the mart values unchanged.
    diff = rows(
        scenario,
        """
        select c.customer_id
        from customer_360 c
        left join rfm_scores r using (customer_id)
        join loyalty_segments l using (customer_id)
        where c.rfm_cell is distinct from r.rfm_cell
           or c.monetary is distinct from r.monetary
           or c.loyalty_cell is distinct from l.loyalty_cell
           or c.loyalty_stage is distinct from l.loyalty_stage
           or c.latest_nps is distinct from l.latest_nps
           or c.response_count is distinct from l.response_count
        """,
    )
    assert diff == []


# ---------------------------------------------------------------- checks


def test_checks_pass_on_good_data(scenario):
    # the fixture's build already ran them; run again explicitly so a failure reads clearly.
    assert models.run_checks(scenario, "marts") == []


def test_duplicated_customer_fails_the_one_row_checks():
    # customers is supposed to be unique; a doubled id fans out into the marts and must stop
    # the run.
    con = new_con()
    add_customers(con, "dup", "dup", "fine")
    add_orders(con, *completed_orders("dup", 2, date(2025, 6, 1)))
    with pytest.raises(DataCheckError) as excinfo:
        build_marts(con)
    failed = {f.check for f in excinfo.value.failures}
    assert {
        "customer_360_one_row_per_customer",
        "loyalty_segments_one_row_per_customer",
        "customer_value_one_row_per_customer",
    } <= failed
    (failure,) = [f for f in excinfo.value.failures if f.check.startswith("customer_360_one")]
    assert failure.sample == [("dup", 2, 8)]  # 2 customers x 2 loyalty x 2 customer_value rows


def test_incomplete_segment_map_fails_its_checks(tmp_path: Path):
    # an overridden map that forgets the 555 cell: the map check names the gap and the Champions
    # customer is left without a segment.
    sql_dir = tmp_path / "sql"
    shutil.copytree(models.SQL_DIR / "marts", sql_dir / "marts")
    shutil.copytree(models.SQL_DIR / "checks" / "marts", sql_dir / "checks" / "marts")
    map_sql = sql_dir / "marts" / "rfm_segment_map.sql"
    text = map_sql.read_text(encoding="utf-8")
    assert "(5, 5, 'Champions')," in text
    map_sql.write_text(text.replace("(5, 5, 'Champions'),", ""), encoding="utf-8")

    con = new_con()
    add_customers(con, "low", "high")
    add_orders(
        con,
        *completed_orders("low", 1, date(2025, 1, 1)),
        *completed_orders("high", 2, date(2025, 6, 1), "99.00"),
    )
    with pytest.raises(DataCheckError) as excinfo:
        build_marts(con, sql_dir=sql_dir)
    failed = {f.check: f for f in excinfo.value.failures}
    assert set(failed) == {"rfm_segment_map_complete", "rfm_scores_in_range"}
    assert failed["rfm_segment_map_complete"].sample == [(5, 5, 0, 0)]


def test_monetary_reconciliation_check_catches_a_wrong_total():
    # tamper with rfm_scores after the build: the check recomputes the window revenue from orders.
    con = new_con()
    add_customers(con, "a", "b")
    add_orders(con, *completed_orders("a", 1, date(2025, 6, 1)), *completed_orders("b", 2, AS_OF))
    build_marts(con)
    con.execute("update rfm_scores set monetary = monetary + 1 where customer_id = 'a'")
    failed = {f.check: f for f in models.run_checks(con, "marts")}
    assert set(failed) == {"rfm_monetary_reconciles"}
    assert failed["rfm_monetary_reconciles"].sample == [("a", Decimal("10.00"), Decimal("11.00"))]


def test_missing_run_variable_fails_the_build():
    # without lapsed_after_days the marts would still build, with is_lapsed NULL for recent buyers;
    # the variables check stops the run instead.
    con = new_con()
    con.execute("reset variable lapsed_after_days")
    add_customers(con, "a")
    with pytest.raises(DataCheckError) as excinfo:
        build_marts(con)
    failed = {f.check: f for f in excinfo.value.failures}
    assert failed["run_variables_are_set"].sample == [("lapsed_after_days",)]


# ---------------------------------------------------------------- customer_360: purchase pattern


def test_buyer_regularity_from_interpurchase_intervals():
    # regular = >= 3 purchase days, mean interval <= 90 days and cv <= 0.5; the rest occasional.
    con = new_con()
    add_customers(con, "steady", "erratic", "slow", "twice", "same_day", "never")
    add_orders(
        con,
        *completed_orders("steady", 4, date(2025, 6, 1)),  # intervals 30, 30, 30: cv 0
        # intervals 10 and 90: mean 50, stddev_pop 40 -> cv 0.8 > 0.5
        ("erratic", "e1", date(2025, 1, 1), "completed", "10.00", "web"),
        ("erratic", "e2", date(2025, 1, 11), "completed", "10.00", "web"),
        ("erratic", "e3", date(2025, 4, 11), "completed", "10.00", "web"),
        *[  # steady but every 120 days: mean 120 > 90
            ("slow", f"s{i}", date(2025, 6, 1) - timedelta(days=120 * i), "completed", "10.00",
             "web")
            for i in range(3)
        ],
        *completed_orders("twice", 2, date(2025, 6, 1)),  # one interval: no cv
        # three orders on one day are one purchase day: no interval at all
        *[("same_day", f"d{i}", date(2025, 6, 1), "completed", "10.00", "web") for i in range(3)],
    )  # fmt: skip
    build_marts(con)
    got = {
        r["customer_id"]: (
            r["buyer_regularity"],
            r["mean_interpurchase_days"],
            r["interpurchase_cv"],
        )
        for r in rows(con, "select * from customer_360")
    }
    assert got == {
        "steady": ("regular", 30.0, 0.0),
        "erratic": ("occasional", 50.0, 0.8),
        "slow": ("occasional", 120.0, 0.0),
        "twice": ("occasional", 30.0, None),
        "same_day": ("occasional", None, None),
        "never": (None, None, None),
    }


def test_regularity_thresholds_can_be_set_by_variable():
    # with regular_max_mean_days = 150 the 120-day rhythm counts as regular.
    con = new_con(regular_max_mean_days=150)
    add_customers(con, "slow")
    add_orders(
        con,
        *[
            (
                "slow",
                f"s{i}",
                date(2025, 6, 1) - timedelta(days=120 * i),
                "completed",
                "10.00",
                "web",
            )
            for i in range(3)
        ],
    )
    build_marts(con)
    assert con.execute("select buyer_regularity from customer_360").fetchall() == [("regular",)]


def test_favourite_store_and_category():
    # store: S02 has two completed orders, S01 one (and a cancelled one that does not count).
    # category: books and toys are in two completed orders each (a returned toys line and the
    # lines of a cancelled order are ignored); books wins the tie on line_amount.
    con = new_con()
    add_customers(con, "fan", "web_only")
    add_orders(
        con,
        ("fan", "p1", date(2025, 5, 1), "completed", "10.00", "store"),
        ("fan", "p2", date(2025, 5, 2), "completed", "10.00", "store"),
        ("fan", "p3", date(2025, 5, 3), "completed", "10.00", "store"),
        ("fan", "p4", date(2025, 5, 4), "cancelled", "10.00", "store"),
        ("fan", "p5", date(2025, 5, 5), "cancelled", "10.00", "store"),
        ("fan", "w1", date(2025, 5, 6), "completed", "10.00", "web"),
        ("fan", "w2", date(2025, 5, 7), "cancelled", "10.00", "web"),
        *completed_orders("web_only", 2, date(2025, 6, 1)),
    )
    con.execute("update orders set store_id = 'S02' where order_id in ('p2', 'p3', 'p5')")
    con.execute("update orders set store_id = 'S01' where order_id in ('p4')")
    con.executemany(
        "insert into order_lines (order_line_key, order_key, order_id, line_number, sku, "
        "product_name, category, quantity, unit_price, line_amount, channel, status) "
        "values (? || ':' || ?, ?, ?, ?, 'SKU', 'item', ?, 1, ?, ?, ?, ?)",
        [
            [f"{src}:{oid}", n, f"{src}:{oid}", oid, n, cat, amount, amount, ch, status]
            for src, oid, n, cat, amount, ch, status in [
                ("pos", "p1", 1, "books", 30, "store", "completed"),
                ("pos", "p1", 2, "toys", 20, "store", "completed"),
                ("pos", "p2", 1, "books", 30, "store", "completed"),
                ("pos", "p3", 1, "toys", 20, "store", "completed"),
                ("web_shop", "w1", 1, "toys", 20, "web", "returned"),
                ("web_shop", "w1", 2, None, 99, "web", "completed"),
                ("web_shop", "w2", 1, "games", 5, "web", "completed"),
                ("web_shop", "w2", 2, "games", 5, "web", "completed"),
            ]
        ],
    )
    build_marts(con)
    got = {
        r["customer_id"]: (r["favourite_store"], r["favourite_category"])
        for r in rows(con, "select * from customer_360")
    }
    assert got == {"fan": ("S02", "books"), "web_only": (None, None)}


# ---------------------------------------------------------------- customer_360: clv


def test_customer_360_carries_customer_value(scenario):
    # the wide table repeats customer_value unchanged; the scenario is too small to fit (17 buyers
    # < 20), so the run still builds, with NULL predictions and the flag off.
    diff = rows(
        scenario,
        """
        select c.customer_id
        from customer_360 c join customer_value v using (customer_id)
        where c.probability_alive is distinct from v.probability_alive
           or c.expected_purchases_365d is distinct from v.expected_purchases_365d
           or c.clv is distinct from v.clv
           or c.clv_horizon_months is distinct from v.clv_horizon_months
        """,
    )
    assert diff == []
    assert scenario.execute(
        "select count(*), count(clv), bool_or(clv_model_fitted) from customer_360"
    ).fetchone() == (27, 0, False)
    assert scenario.execute(
        "select purchase_days, repeat_purchase_days, first_purchase_to_as_of_days "
        "from customer_value where customer_id = 'advocate'"
    ).fetchone() == (4, 3, 100)  # 4 orders 30 days apart, the last 10 days before as_of


# ---------------------------------------------------------------- nps_summary


def test_nps_summary_of_the_scenario(scenario):
    # 16 NPS answers in (2024-06-30, 2025-06-30]: 8 promoters, 3 passives, 5 detractors (the
    # anonymous 0 counts; the answer after as_of and CSAT-only answers do not).
    (summary,) = rows(scenario, "select * from nps_summary")
    assert summary == {
        "as_of_date": AS_OF,
        "responses_from": date(2024, 7, 1),
        "responses_to": AS_OF,
        "responses": 16,
        "respondents": 14,
        "promoters": 8,
        "passives": 3,
        "detractors": 5,
        "pct_promoters": 50.0,
        "pct_detractors": 31.3,
        "nps": 18.8,  # 100 * (8 - 5) / 16 = 18.75
    }


def test_nps_window_is_the_last_12_months_and_empty_gives_null():
    con = new_con()
    add_customers(con, "a")
    add_responses(
        con,
        ("a", "old", datetime(2024, 6, 30, 23), 0, None),  # the excluded start day
        ("a", "first", datetime(2024, 7, 1, 0), 10, None),  # first day in
        ("a", "last", datetime(2025, 6, 30, 23), 10, None),  # as_of day: in
    )
    build_marts(con)
    assert con.execute("select responses, promoters, nps from nps_summary").fetchall() == [
        (2, 2, 100.0)
    ]
    con.execute("delete from survey_responses")
    build_marts(con)
    assert con.execute("select responses, nps from nps_summary").fetchall() == [(0, None)]


# ---------------------------------------------------------------- segment_moves


def _history(con, snapshot_on: date, *rows_: tuple) -> None:
    con.executemany(
        "insert into segment_history values (?, ?, ?, ?, ?)",
        [[snapshot_on, *r] for r in rows_],
    )


def test_first_run_has_no_segment_moves(scenario):
    assert scenario.execute("select count(*) from segment_moves").fetchone()[0] == 0


def test_segment_moves_against_the_latest_earlier_snapshot():
    con = new_con()
    add_customers(con, "stays", "grows", "newbie")
    add_orders(
        con,
        *completed_orders("stays", 1, date(2025, 6, 1)),
        *completed_orders("grows", 4, date(2025, 6, 20)),
        *completed_orders("newbie", 1, date(2025, 6, 25)),
    )
    # an older snapshot (ignored), the previous one, and one for as_of itself (a re-run; ignored)
    _history(con, date(2025, 4, 30), ("stays", "Lost", "latent_loyalty", "lapsed"))
    prev = date(2025, 5, 31)
    _history(
        con,
        prev,
        ("stays", None, "no_loyalty", "first_time_buyer"),
        ("grows", "Promising", "no_loyalty", "repeat_buyer"),
        ("merged_away", "Lost", "no_loyalty", "lapsed"),
    )
    _history(con, AS_OF, ("stays", "Champions", "true_loyalty", "advocate"))
    build_marts(con)
    now = by_id(con, "loyalty_segments")
    got = {
        (r["customer_id"], r["dimension"]): (r["from_value"], r["to_value"], r["move_type"])
        for r in rows(con, "select * from segment_moves")
    }
    assert {(r["as_of_date"], r["previous_snapshot_on"]) for r in rows(
        con, "select * from segment_moves"
    )} == {(AS_OF, prev)}  # fmt: skip
    assert now["grows"]["loyalty_stage"] == "loyal"
    assert now["stays"]["loyalty_cell"] == "no_loyalty"
    assert got == {
        # stays: had no rfm segment in the previous snapshot, now has one; cell and stage equal
        ("stays", "rfm_segment"): (None, now["stays"]["rfm_segment"], "moved"),
        ("grows", "rfm_segment"): ("Promising", now["grows"]["rfm_segment"], "moved"),
        ("grows", "loyalty_cell"): ("no_loyalty", "spurious_loyalty", "moved"),
        ("grows", "loyalty_stage"): ("repeat_buyer", "loyal", "moved"),
        ("newbie", "rfm_segment"): (None, now["newbie"]["rfm_segment"], "new_customer"),
        ("newbie", "loyalty_cell"): (None, "no_loyalty", "new_customer"),
        ("newbie", "loyalty_stage"): (None, "first_time_buyer", "new_customer"),
        ("merged_away", "rfm_segment"): ("Lost", None, "left_customers"),
        ("merged_away", "loyalty_cell"): ("no_loyalty", None, "left_customers"),
        ("merged_away", "loyalty_stage"): ("lapsed", None, "left_customers"),
    }


def test_snapshot_then_next_run_reports_the_moves():
    # the pipeline's order: build, snapshot; next night (later as_of) build again and diff.
    from ccv.analytics.segment_history import snapshot_segments

    con = new_con()
    add_customers(con, "a")
    add_orders(con, *completed_orders("a", 1, date(2025, 6, 1)))
    build_marts(con)
    assert snapshot_segments(con, AS_OF) == 1
    assert snapshot_segments(con, AS_OF) == 1  # a re-run replaces its own snapshot
    later = AS_OF + timedelta(days=800)  # past the 24-month window: no rfm segment any more
    con.execute("set variable as_of_date = ?", [later])
    build_marts(con)
    got = rows(con, "select dimension, from_value, to_value from segment_moves order by 1")
    assert got == [
        {"dimension": "loyalty_stage", "from_value": "first_time_buyer", "to_value": "lapsed"},
        {"dimension": "rfm_segment", "from_value": "Lost", "to_value": None},
    ]


# ---------------------------------------------------------------- rfm on a public transaction log

CDNOW = Path(__file__).parent / "data" / "cdnow_sample.txt"


def read_cdnow() -> pd.DataFrame:
    """The CDNOW sample: one row per transaction (customer, day, CDs, dollars)."""
    log = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer", "date", "cds", "amount"],
        dtype={"master_id": str, "date": str},
    )
    log["ordered_on"] = pd.to_datetime(log["date"], format="%Y%m%d").dt.date
    log["customer_id"] = [f"cdnow-{c:04d}" for c in log["customer"]]
    log["order_id"] = [f"t{i:05d}" for i in range(len(log))]
    return log


def load_cdnow(con: duckdb.DuckDBPyConnection, log: pd.DataFrame) -> None:
    """Every transaction as a completed web order in `orders`, every customer in `customers`."""
    con.register("cdnow_log", log[["customer_id", "order_id", "ordered_on", "amount"]])
    con.execute(
        "insert into customers (customer_id, sources) "
        "select distinct customer_id, ['cdnow'] from cdnow_log"
    )
    con.execute(
        """
        insert into orders by name
        select
            'cdnow:' || order_id as order_key, order_id, 'cdnow' as source, customer_id,
            'web' as channel, null as store_id, cast(ordered_on as timestamp) as ordered_at,
            cast(ordered_on as date) as ordered_on, 'completed' as status,
            cast(amount as decimal(18, 2)) as gross_amount, 0 as discount_amount,
            cast(amount as decimal(18, 2)) as net_amount,
            cast(amount as decimal(18, 2)) as revenue_amount, 'USD' as currency
        from cdnow_log
        """
    )
    con.unregister("cdnow_log")


def test_rfm_on_the_cdnow_sample_matches_an_independent_pandas_computation():
    # 6,919 real transactions of 2,357 CDNOW customers (1997-01 .. 1998-06). With a 12-month
    # window ending 1998-03-31, orders before 1997-04-01 and after the as-of date must be ignored.
    as_of = date(1998, 3, 31)
    log = read_cdnow()
    con = new_con(as_of=as_of, window_months=12)
    load_cdnow(con, log)
    build_marts(con)

    window = log[(log["ordered_on"] > date(1997, 3, 31)) & (log["ordered_on"] <= as_of)]
    expected = window.groupby("customer_id").agg(
        last=("ordered_on", "max"), frequency=("order_id", "nunique"), monetary=("amount", "sum")
    )
    expected["recency_days"] = [(as_of - d).days for d in expected["last"]]
    got = (
        con.execute(
            "select customer_id, recency_days, frequency, monetary from rfm_scores order by 1"
        )
        .df()
        .set_index("customer_id")
    )
    assert len(got) == len(expected) > 500  # a real share of the 2,357 customers
    assert got.index.tolist() == sorted(expected.index)
    exp = expected.loc[got.index]
    assert got["recency_days"].tolist() == exp["recency_days"].tolist()
    assert got["frequency"].tolist() == exp["frequency"].tolist()
    assert [Decimal(str(v)) for v in got["monetary"]] == [
        Decimal(f"{v:.2f}") for v in exp["monetary"]
    ]
    # and the scores use the whole 1-5 range on real, heavily tied data
    scores = con.execute(
        "select min(r_score), max(r_score), min(f_score), max(f_score), min(m_score), "
        "max(m_score), count(distinct rfm_segment) from rfm_scores"
    ).fetchone()
    assert scores[:6] == (1, 5, 1, 5, 1, 5) and scores[6] >= 8


# ---------------------------------------------------------------- data dictionary


def test_every_mart_column_is_documented_with_its_type(scenario):
    # the marts layer's tables plus customer_value (built in Python) against the dictionary:
    # same tables, same columns in the same order, same DuckDB types.
    from ccv.analytics.dictionary import TABLES

    built = {m.name for m in models.load_layer("marts")} | {"customer_value"}
    assert {t.name for t in TABLES} == built
    for table in TABLES:
        actual = [(r[0], r[1]) for r in scenario.execute(f"describe {table.name}").fetchall()]
        documented = [(c.name, c.type) for c in table.columns]
        assert documented == actual, table.name
        assert all(c.description and c.computed for c in table.columns), table.name


def test_committed_data_dictionary_equals_the_generator_output():
    from ccv.analytics.dictionary import DOCS_PATH, render

    assert DOCS_PATH.read_text(encoding="utf-8") == render(), (
        "docs/data_dictionary.md is stale: run .venv/bin/python -m ccv.analytics.dictionary"
    )


def test_segment_history_keeps_the_latest_snapshots_and_moves_still_diff_the_last_one():
    from ccv.analytics.segment_history import SNAPSHOTS_KEPT, snapshot_segments

    con = new_con()
    add_customers(con, "a")
    add_orders(con, *completed_orders("a", 1, date(2025, 6, 1)))
    build_marts(con)
    nights = [AS_OF + timedelta(days=n) for n in range(SNAPSHOTS_KEPT + 3)]
    for night in nights:
        assert snapshot_segments(con, night) == 1
    kept = [
        d for (d,) in con.execute("select snapshot_on from segment_history order by 1").fetchall()
    ]
    assert kept == nights[-SNAPSHOTS_KEPT:]
    # a backfill of a date older than every kept snapshot keeps nothing of it
    assert snapshot_segments(con, AS_OF - timedelta(days=30)) == 0
    later = AS_OF + timedelta(days=800)
    con.execute("set variable as_of_date = ?", [later])
    build_marts(con)
    ((previous,),) = con.execute(
        "select distinct previous_snapshot_on from segment_moves"
    ).fetchall()
    assert previous == nights[-1]
