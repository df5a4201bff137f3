"""Tests for ccv.analytics.clv (BG/NBD + Gamma-Gamma) and the customer_value table.

Reference results: the CDNOW sample (2,357 customers who first bought in Q1 1997, calibration
1997-01-01 .. 1997-09-30 = 38.86 weeks; tests/data/README.md). Fader, Hardie & Lee (2005),
"Counting your customers the easy way", report BG/NBD r = 0.243, α = 4.414, a = 0.793,
b = 2.426 (weeks, log-likelihood −9582.4); the Gamma-Gamma fit on the same customers' mean
repeat spend gives p = 6.25, q = 3.74, γ = 15.44 (Fader, Hardie & Lee 2005, "RFM and CLV";
the lifetimes documentation).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ccv.analytics.clv import (
    BgNbdParams,
    FitError,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    bgnbd_probability_alive,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
)
from ccv.analytics.customer_value import build_customer_value, read_inputs
from ccv.analytics.simulate import simulate_bgnbd, simulate_spend
from ccv.warehouse import models

DATA = Path(__file__).parent / "data"
CALIBRATION_END = dt.date(1997, 9, 30)
PUBLISHED_BGNBD = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


def two_significant_digits(value: float) -> float:
    return float(f"{value:.2g}")


def assert_params(got, published, scale: dict[str, float] | None = None) -> None:
    """Every parameter equals the published one to 2 significant digits."""
    for name, want in vars(published).items():
        value = getattr(got, name) / (scale or {}).get(name, 1.0)
        assert two_significant_digits(value) == two_significant_digits(want), (name, value, want)


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    """The published CDNOW calibration summary: x, t_x, T (weeks) and zbar (mean repeat spend)."""
    return pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def cdnow_con() -> duckdb.DuckDBPyConnection:
    """The raw CDNOW transaction log as `customers` + completed `orders`, in DuckDB."""
    log = pd.read_csv(
        DATA / "cdnow_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer", "date", "cds", "amount"],
        dtype={"master_id": str, "date": str},
    )
    log["ordered_on"] = pd.to_datetime(log["date"], format="%Y%m%d").dt.date
    log["customer_id"] = [f"cdnow-{c:04d}" for c in log["customer"]]
    log["order_id"] = [f"t{i:05d}" for i in range(len(log))]
    con = duckdb.connect()
    con.register("cdnow_log", log)
    con.execute("create table customers as select distinct customer_id from cdnow_log")
    con.execute(
        """
        create table orders as
        select
            'cdnow:' || order_id as order_key, order_id, customer_id,
            'completed' as status, cast(ordered_on as date) as ordered_on,
            cast(amount as decimal(18, 2)) as revenue_amount
        from cdnow_log
        """
    )
    # a cancelled order and an order after the calibration end: neither may count
    con.execute(
        """
        insert into orders values
            ('x:1', '1', 'cdnow-0003', 'cancelled', date '1997-05-01', 0),
            ('x:2', '2', 'cdnow-0003', 'completed', date '1997-10-01', 99)
        """
    )
    con.unregister("cdnow_log")
    models.build_models(con, "core", ["purchase_days"])
    yield con
    con.close()


# ---------------------------------------------------------------- published parameters


def test_bgnbd_fit_reproduces_the_published_cdnow_parameters(summary):
    fit = fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    assert_params(fit.params, PUBLISHED_BGNBD)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.customers == 2357


def test_gamma_gamma_fit_reproduces_the_published_cdnow_parameters(summary):
    # only repeat buyers (x > 0) carry a mean repeat spend: 946 of the 2,357
    fit = fit_gamma_gamma(summary["x"], summary["zbar"])
    assert fit.customers == 946
    assert_params(fit.params, PUBLISHED_GAMMA_GAMMA)


def test_summary_built_from_the_raw_log_equals_the_published_summary(cdnow_con, summary):
    # our day-granular inputs from `orders` (days) against the published summary (weeks)
    inputs = read_inputs(cdnow_con, CALIBRATION_END).set_index("customer_id")
    inputs.index = [int(i.removeprefix("cdnow-")) for i in inputs.index]
    published = summary.set_index("ID").loc[inputs.index]
    assert len(inputs) == 2357
    assert (inputs["repeat_purchase_days"] == published["x"]).all()
    assert np.allclose(inputs["first_to_last_purchase_days"] / 7, published["t_x"], atol=0.006)
    assert np.allclose(inputs["first_purchase_to_as_of_days"] / 7, published["T"], atol=0.006)
    repeat = published["x"] > 0
    # zbar is rounded to cents in the file; ours is exact
    assert np.allclose(
        inputs.loc[repeat, "avg_repeat_purchase_value"], published.loc[repeat, "zbar"], atol=0.011
    )
    assert inputs.loc[~repeat, "avg_repeat_purchase_value"].isna().all()


def test_build_customer_value_on_the_raw_log_fits_the_published_models(cdnow_con):
    # the whole path: orders -> inputs in days -> fit. In days α is 7 times the weekly α; r, a, b
    # do not depend on the time unit.
    result = build_customer_value(cdnow_con, CALIBRATION_END, horizon_months=12)
    assert (result.customers, result.buyers, result.repeat_buyers) == (2357, 2357, 946)
    assert result.bgnbd_error is None and result.gamma_gamma_error is None
    assert_params(result.bgnbd.params, PUBLISHED_BGNBD, scale={"alpha": 7})
    assert_params(result.gamma_gamma.params, PUBLISHED_GAMMA_GAMMA)
    flags = cdnow_con.execute(
        "select bool_and(model_fitted), bool_and(spend_model_fitted), count(clv) "
        "from customer_value"
    ).fetchone()
    assert flags == (True, True, 2357)


# ---------------------------------------------------------------- closed forms, independently


def hyp2f1_series(a: float, b: float, c: float, z: float) -> float:
    """Gauss's hypergeometric series, summed until the terms vanish (|z| < 1)."""
    total, term, k = 1.0, 1.0, 0
    while abs(term) > 1e-16 * abs(total):
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        k += 1
    return total


def p_alive_by_hand(p: BgNbdParams, x: int, t_x: float, T: float) -> float:
    if x == 0:
        return 1.0
    return 1 / (1 + p.a / (p.b + x - 1) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x))


def expected_by_hand(p: BgNbdParams, t: float, x: int, t_x: float, T: float) -> float:
    """FHL 2005 eq. 10, written out with plain floats."""
    z = t / (p.alpha + T + t)
    head = (p.a + p.b + x - 1) / (p.a - 1)
    tail = 1 - ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp2f1_series(
        p.r + x, p.b + x, p.a + p.b + x - 1, z
    )
    return head * tail * p_alive_by_hand(p, x, t_x, T)


def log_likelihood_by_hand(p: BgNbdParams, x: int, t_x: float, T: float) -> float:
    """FHL 2005 eq. 6 as products of Beta and Gamma functions (not in log space)."""

    def beta(u: float, v: float) -> float:
        return math.exp(math.lgamma(u) + math.lgamma(v) - math.lgamma(u + v))

    gamma_part = math.exp(math.lgamma(p.r + x) - math.lgamma(p.r)) * p.alpha**p.r
    value = beta(p.a, p.b + x) / beta(p.a, p.b) * gamma_part / (p.alpha + T) ** (p.r + x)
    if x > 0:
        value += (
            beta(p.a + 1, p.b + x - 1) / beta(p.a, p.b) * gamma_part / (p.alpha + t_x) ** (p.r + x)
        )
    return math.log(value)


# CDNOW customers 1, 2, 3 and the heaviest buyer, in weeks: (x, t_x, T)
CUSTOMERS = [(2, 30.43, 38.86), (1, 1.71, 38.86), (0, 0.0, 38.86), (14, 33.14, 35.57)]


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_probability_alive_and_expected_purchases_match_the_closed_form(x, t_x, T):
    p = PUBLISHED_BGNBD
    assert bgnbd_probability_alive(p, [x], [t_x], [T])[0] == pytest.approx(
        p_alive_by_hand(p, x, t_x, T), rel=1e-10
    )
    for t in (1.0, 13.0, 39.0, 52.0):
        assert bgnbd_expected_purchases(p, t, [x], [t_x], [T])[0] == pytest.approx(
            expected_by_hand(p, t, x, t_x, T), rel=1e-9
        )
    assert bgnbd_log_likelihood(p, [x], [t_x], [T])[0] == pytest.approx(
        log_likelihood_by_hand(p, x, t_x, T), rel=1e-10
    )


def test_known_values_for_cdnow_customer_1():
    # x = 2, t_x = 30.43, T = 38.86 weeks: P(alive) ≈ 0.73 and ≈ 1.23 purchases in the next 39
    # weeks with the published parameters.
    p = PUBLISHED_BGNBD
    assert bgnbd_probability_alive(p, [2], [30.43], [38.86])[0] == pytest.approx(0.726, abs=1e-3)
    assert bgnbd_expected_purchases(p, 39, [2], [30.43], [38.86])[0] == pytest.approx(
        1.226, abs=1e-3
    )


def test_gamma_gamma_expected_value_and_clv_by_hand():
    gg, bg = PUBLISHED_GAMMA_GAMMA, PUBLISHED_BGNBD
    # E[M | x, m] = (γ + x m) p / (p x + q − 1); x = 0 gives the population mean p γ / (q − 1)
    got = gamma_gamma_expected_value(gg, [0, 2, 10], [np.nan, 22.35, 50.0])
    want = [gg.p * gg.gamma / (gg.q - 1)] + [
        (gg.gamma + x * m) * gg.p / (gg.p * x + gg.q - 1) for x, m in ((2, 22.35), (10, 50.0))
    ]
    assert got == pytest.approx(want, rel=1e-12)
    assert gg.population_mean == pytest.approx(want[0])
    # CLV: month-by-month expected purchases x spend, discounted at the end of each month
    x, t_x, T, m = 2, 30.43, 38.86, 22.35
    month = 365.25 / 12 / 7
    rate = 0.01
    cumulative = [0.0] + [expected_by_hand(bg, i * month, x, t_x, T) for i in range(1, 13)]
    by_hand = want[1] * sum(
        (cumulative[i] - cumulative[i - 1]) / (1 + rate) ** i for i in range(1, 13)
    )
    got = customer_lifetime_value(bg, gg, [x], [t_x], [T], [m], 12, rate, days_per_unit=7)
    assert got[0] == pytest.approx(by_hand, rel=1e-9)
    # undiscounted CLV over h months = E[purchases in h months] x spend
    flat = customer_lifetime_value(bg, gg, [x], [t_x], [T], [m], 6, 0.0, days_per_unit=7)
    assert flat[0] == pytest.approx(expected_by_hand(bg, 6 * month, x, t_x, T) * want[1])


# ---------------------------------------------------------------- recovery on synthetic data


def test_fit_recovers_the_parameters_that_generated_the_data():
    rng = np.random.default_rng(7)
    bg = BgNbdParams(r=0.5, alpha=10.0, a=0.8, b=2.5)
    gg = GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
    T = rng.uniform(20, 80, 40_000)
    x, t_x = simulate_bgnbd(bg, T, rng)
    fit = fit_bgnbd(x, t_x, T).params
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit, name) == pytest.approx(getattr(bg, name), rel=0.15), name
    spend = fit_gamma_gamma(x, simulate_spend(gg, x, rng)).params
    for name in ("p", "q", "gamma"):
        assert getattr(spend, name) == pytest.approx(getattr(gg, name), rel=0.15), name


# ---------------------------------------------------------------- data the models cannot fit


def tiny_con(orders: list[tuple]) -> duckdb.DuckDBPyConnection:
    """customers a..e plus `prospect`; orders: (customer_id, day offset, amount)."""
    con = duckdb.connect()
    con.execute("create table customers (customer_id varchar)")
    con.execute("insert into customers values ('a'), ('b'), ('c'), ('d'), ('e'), ('prospect')")
    con.execute(
        "create table orders (order_key varchar, customer_id varchar, status varchar, "
        "ordered_on date, revenue_amount decimal(18, 2))"
    )
    if orders:
        con.executemany(
            "insert into orders values (?, ?, 'completed', date '2025-01-01' + ?, ?)",
            [[f"o{i}", cid, day, amount] for i, (cid, day, amount) in enumerate(orders)],
        )
    models.build_models(con, "core", ["purchase_days"])
    return con


def test_a_tiny_data_set_writes_nulls_and_flags_instead_of_failing():
    con = tiny_con([("a", 0, 10), ("a", 30, 12), ("b", 5, 20), ("c", 40, 8)])
    result = build_customer_value(con, dt.date(2025, 6, 30), horizon_months=12)
    assert result.bgnbd is None and "at least 20" in result.bgnbd_error
    assert result.gamma_gamma is None and "at least 10" in result.gamma_gamma_error
    got = con.execute(
        "select customer_id, purchase_days, repeat_purchase_days, first_to_last_purchase_days, "
        "first_purchase_to_as_of_days, avg_repeat_purchase_value, probability_alive, clv, "
        "model_fitted, spend_model_fitted from customer_value order by 1"
    ).fetchall()
    assert got == [
        ("a", 2, 1, 30, 180, 12, None, None, False, False),
        ("b", 1, 0, 0, 175, None, None, None, False, False),
        ("c", 1, 0, 0, 140, None, None, None, False, False),
        ("d", 0, None, None, None, None, None, None, False, False),
        ("e", 0, None, None, None, None, None, None, False, False),
        ("prospect", 0, None, None, None, None, None, None, False, False),
    ]


def test_no_repeat_buyer_cannot_fit_and_says_why():
    con = tiny_con([(cid, i, 10) for i, cid in enumerate("abcde")])
    result = build_customer_value(con, dt.date(2025, 6, 30), min_buyers=2)
    assert result.bgnbd_error == "BG/NBD needs at least one repeat buyer"
    with pytest.raises(FitError):
        fit_bgnbd([0, 0], [0, 0], [5, 6])


def test_purchase_model_without_spend_model_gives_purchases_but_no_clv():
    # enough buyers for BG/NBD (with lowered minimums) but too few repeat buyers for Gamma-Gamma
    days = {"a": [0, 10, 20, 30, 40, 50], "b": [0, 100], "c": [5, 60, 170], "d": [90], "e": [1, 2]}
    con = tiny_con([(cid, d, 10 + d) for cid, ds in days.items() for d in ds])
    result = build_customer_value(con, dt.date(2025, 6, 30), min_buyers=5, min_repeat_buyers=5)
    assert result.bgnbd is not None and result.gamma_gamma is None
    got = con.execute(
        "select count(probability_alive), count(expected_purchases_365d), count(clv), "
        "count(expected_avg_order_value), bool_or(spend_model_fitted) from customer_value"
    ).fetchone()
    assert got == (5, 5, 0, 0, False)
    assert "got 4" in result.gamma_gamma_error


def test_negative_horizon_is_rejected():
    con = tiny_con([])
    with pytest.raises(ValueError, match="horizon_months"):
        build_customer_value(con, dt.date(2025, 6, 30), horizon_months=-1)


def test_identical_customers_give_a_degenerate_fit_that_is_flagged_not_used():
    # five customers buying 4 times each at the same pace: no heterogeneity, r and alpha run off
    # together (where the optimiser stops depends on the CPU, so the ridge itself is tested);
    # the table is still written, with NULLs.
    rng = np.random.default_rng(3)
    orders = [(cid, int(d), 10) for cid in "abcde" for d in sorted(rng.choice(150, 4, False))]
    con = tiny_con(orders)
    result = build_customer_value(con, dt.date(2025, 6, 30), min_buyers=5, min_repeat_buyers=5)
    assert result.bgnbd is None and "degenerate" in result.bgnbd_error
    got = con.execute(
        "select count(*), count(probability_alive), count(clv), bool_or(model_fitted) "
        "from customer_value"
    ).fetchone()
    assert got == (6, 0, 0, False)


# ---------------------------------------------------------------- fast paths give the same bits


def test_fit_likelihoods_are_bit_for_bit_the_reference_likelihoods(summary):
    # the fits evaluate Γ/B terms once per distinct frequency; every row must still get exactly
    # the value of the plain per-row formula, so fitted parameters (and marts) do not move
    from ccv.analytics.clv import (
        _BgNbdLikelihood,
        _GammaGammaLikelihood,
        gamma_gamma_log_likelihood,
    )

    rng = np.random.default_rng(11)
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    bgnbd = _BgNbdLikelihood(x, t_x, T)
    repeat = x > 0
    m = summary["zbar"].to_numpy(dtype=float)[repeat]
    gamma_gamma = _GammaGammaLikelihood(x[repeat], m)
    for _ in range(20):
        p = BgNbdParams(*np.exp(rng.normal(0, 2, 4)))
        assert np.array_equal(bgnbd(p), bgnbd_log_likelihood(p, x, t_x, T), equal_nan=True)
        g = GammaGammaParams(*np.exp(rng.normal(0, 2, 3)))
        assert np.array_equal(
            gamma_gamma(g), gamma_gamma_log_likelihood(g, x[repeat], m), equal_nan=True
        )


def test_the_fits_analytic_gradients_match_central_differences(summary):
    # L-BFGS-B steps with these gradients: a wrong sign or term would still "converge", but
    # elsewhere (the published-parameter tests would catch a large error, not a small one)
    from ccv.analytics.clv import _BgNbdLikelihood, _GammaGammaLikelihood

    rng = np.random.default_rng(5)
    x, t_x, T = (summary[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    repeat = x > 0
    m = summary["zbar"].to_numpy(dtype=float)[repeat]
    cases = [
        (_BgNbdLikelihood(x, t_x, T), BgNbdParams, 4),
        (_GammaGammaLikelihood(x[repeat], m), GammaGammaParams, 3),
    ]
    for likelihood, params_type, size in cases:
        weight = rng.integers(1, 5, len(likelihood.x)).astype(float)
        for _ in range(10):
            theta = np.exp(rng.normal(0, 1, size))
            value, analytic = likelihood.weighted(params_type(*theta), weight)
            assert value == weight @ likelihood(params_type(*theta))
            for k in range(size):
                step = 1e-6 * theta[k]
                up, down = theta.copy(), theta.copy()
                up[k] += step
                down[k] -= step
                rise = weight @ (likelihood(params_type(*up)) - likelihood(params_type(*down)))
                assert analytic[k] == pytest.approx(rise / (2 * step), rel=1e-5, abs=1e-4)


@pytest.mark.parametrize("whole_days", [True, False])
def test_distinct_rows_match_numpy_unique_by_rows(whole_days):
    from ccv.analytics.clv import distinct_rows

    rng = np.random.default_rng(5)
    columns = [rng.integers(0, 40, 5000).astype(float) for _ in range(3)]
    if not whole_days:
        columns[1] = columns[1] / 7  # weeks: takes the general path
    unique, inverse, counts = distinct_rows(*columns)
    want, want_inverse, want_counts = np.unique(
        np.column_stack(columns), axis=0, return_inverse=True, return_counts=True
    )
    for i, column in enumerate(unique):
        assert np.array_equal(column, want[:, i])
    assert np.array_equal(inverse, want_inverse.reshape(-1))
    assert np.array_equal(counts, want_counts)
    assert all(np.array_equal(u[inverse], c) for u, c in zip(unique, columns, strict=True))
