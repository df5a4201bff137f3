"""Customer lifetime value: BG/NBD for how often, Gamma-Gamma for how much.

Why these two models: they need nothing but the order log (first / last purchase day, number of
purchase days, spend), are the published standard for non-contractual retail (Fader, Hardie & Lee
2005, "Counting your customers the easy way" and "RFM and CLV"), and have closed-form
likelihoods, so they fit a million customers in seconds with NumPy/SciPy alone.

The functions here are unit-agnostic: `recency` and `T` may be in days or weeks, horizons are in
the same unit. `ccv.analytics.customer_value` feeds them days. Inputs per customer, as in the
papers:

    frequency  x    repeat purchases: purchase days after the first one (0 for one-time buyers)
    recency    t_x  time from the first to the last purchase (0 when x = 0)
    T               time from the first purchase to the end of calibration (the as-of date)
    monetary   m_x  mean value of the REPEAT purchases (Gamma-Gamma only, customers with x > 0)

Both likelihoods are fitted by maximum likelihood on log-parameters (so every parameter stays
positive without bounds) with `scipy.optimize.minimize`. Customers sharing identical inputs are
collapsed into one weighted row first: with day-granular data a million customers have far fewer
distinct (x, t_x, T) triples, which is what makes the fit fast.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

DAYS_PER_MONTH = 365.25 / 12  # a CLV "month" is an average calendar month, 30.4375 days


class FitError(RuntimeError):
    """The data cannot support the model (too few customers, no repeat buyers, no convergence)."""


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD: purchase rate ~ Gamma(r, alpha) while alive; drop-out p ~ Beta(a, b) per purchase."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: spend per purchase ~ Gamma(p, nu) with nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float

    @property
    def population_mean(self) -> float:
        """Expected spend per purchase of a customer we know nothing about: p·gamma / (q − 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


@dataclass(frozen=True)
class Fit:
    """A fitted model: parameters, maximised log-likelihood, customers used, optimiser message."""

    params: BgNbdParams | GammaGammaParams
    log_likelihood: float
    customers: int
    message: str


# ---------------------------------------------------------------- helpers


def _as_float(*arrays) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the stacked columns and how many customers share each."""
    unique, _, counts = distinct_rows(*columns)
    return unique, counts


def distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of the stacked columns (sorted), each input row's index into them, counts.

    Day-granular inputs are whole numbers: their rows are then packed into one int64 key and
    sorted in one dimension, several times faster than `np.unique(axis=0)` at a million rows
    with exactly the same result (same rows, same lexicographic order). Other inputs (weeks,
    spend) are sorted with `np.lexsort` (`_distinct_sorted_rows`): `np.unique(axis=0)` took
    0.7 s for the Gamma-Gamma fit's 830k (frequency, spend) rows, almost all distinct.
    """
    columns = [np.asarray(c, dtype=np.float64) for c in columns]
    key = _integer_row_key(columns)
    if key is None:
        unique_columns, inverse, counts = _distinct_sorted_rows(columns)
    else:
        _, first, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        unique_columns = [c[first] for c in columns]
    return unique_columns, inverse.reshape(-1), counts.astype(np.float64)


def _distinct_sorted_rows(
    columns: list[np.ndarray],
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """`distinct_rows` of float columns with no NaN by a lexicographic sort: the rows in order,
    a new distinct row wherever any column differs from the row before."""
    order = np.lexsort(columns[::-1])  # lexsort's last key is the primary one
    ordered = [c[order] for c in columns]
    starts = np.ones(len(order), dtype=bool)
    if len(order):
        starts[1:] = np.any([c[1:] != c[:-1] for c in ordered], axis=0)
    group = np.cumsum(starts) - 1
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = group
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, len(order)))
    return [c[first] for c in ordered], inverse, counts


def _integer_row_key(columns: list[np.ndarray]) -> np.ndarray | None:
    """One int64 per row that sorts like the row, or None when the columns are not small whole
    numbers (negative, fractional, NaN or too wide to pack)."""
    key = np.zeros(columns[0].shape, dtype=np.int64)
    span = 1
    for column in columns:
        if column.size == 0 or not np.all(np.isfinite(column)):
            return None
        low, high = column.min(), column.max()
        if low < 0 or not np.array_equal(column, np.floor(column)):
            return None
        width = int(high) + 1
        span *= width
        if span >= 2**62:
            return None
        key = key * width + column.astype(np.int64)
    return key


def _maximise(neg_mean_ll, with_gradient, start: np.ndarray) -> tuple[np.ndarray, float, str]:
    """Minimise a mean negative log-likelihood over log-parameters; L-BFGS-B, then Nelder-Mead.

    Quasi-Newton is fast on these smooth surfaces; Nelder-Mead (what the reference
    implementations use) is the fallback when L-BFGS-B goes astray. `with_gradient` gives the
    value and its analytic gradient at once (`neg_mean_ll` the value alone, for Nelder-Mead):
    differenced numerically, the gradient cost one more evaluation per parameter at every step
    (at a million customers the two fits took 2.4 s a night that way).
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = minimize(with_gradient, start, method="L-BFGS-B", jac=True)
        if not (best.success and np.isfinite(best.fun)):
            fallback = minimize(
                neg_mean_ll,
                best.x if np.all(np.isfinite(best.x)) else start,
                method="Nelder-Mead",
                options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10},
            )
            if fallback.success and np.isfinite(fallback.fun):
                best = fallback
    if not (best.success and np.isfinite(best.fun) and np.all(np.isfinite(best.x))):
        raise FitError(f"optimiser did not converge: {best.message}")
    if np.any(np.abs(best.x) > 25):
        raise FitError(f"a parameter ran off to the boundary: exp({best.x.round(1).tolist()})")
    return best.x, float(best.fun), str(best.message)


def _mean_and_gradient(
    log_likelihood, params, log_params: np.ndarray, weight: np.ndarray
) -> tuple[float, np.ndarray]:
    """The mean negative log-likelihood of weighted rows and its gradient by the
    log-parameters (d/d log θ = θ · d/dθ); infinite with a zero gradient where it is not
    finite, as the value-only function gives infinity there."""
    total = weight.sum()
    value, gradient = log_likelihood.weighted(params, weight)
    value, gradient = -value / total, -gradient / total * np.exp(log_params)
    if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
        return np.inf, np.zeros_like(log_params)
    return float(value), gradient


# ---------------------------------------------------------------- BG/NBD


def bgnbd_log_likelihood(params: BgNbdParams, frequency, recency, T) -> np.ndarray:
    """Per-customer log-likelihood of BG/NBD (Fader, Hardie & Lee 2005, eq. 6), vectorised.

    L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
        + [x > 0] · B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
    summed in log space (logaddexp) so large x and T do not overflow.
    """
    x, t_x, T = _as_float(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive_to_end = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    x_safe = np.where(repeat, x, 1.0)  # B(a+1, b−1) is undefined for x = 0; that term is 0 anyway
    died_after_last = np.where(
        repeat, betaln(a + 1, b + x_safe - 1) - (r + x) * np.log(alpha + t_x), -np.inf
    )
    return common + np.logaddexp(alive_to_end, died_after_last)


class _BgNbdLikelihood:
    """`bgnbd_log_likelihood` for fixed data, with the special functions evaluated once per
    distinct frequency instead of once per row.

    The optimiser evaluates the likelihood some 100 times; Γ and B terms depend only on x, which
    takes a few dozen values, while rows number up to a million. Every row still gets the very
    same floating-point operations in the same order, so the values (and so the fitted
    parameters) are bit-for-bit those of `bgnbd_log_likelihood` (tests/test_clv.py checks it).
    """

    def __init__(self, frequency, recency, T):
        self.x, self.t_x, self.T = _as_float(frequency, recency, T)
        self.distinct_x, self.x_index = np.unique(self.x, return_inverse=True)
        self.x_index = self.x_index.reshape(-1)
        self.repeat = self.x > 0

    def _terms(self, params: BgNbdParams) -> tuple[np.ndarray, ...]:
        """Per row: the common term, the two terms `__call__` adds in log space (alive to the
        end, died after the last purchase: −inf for x = 0), and log(α+T), log(α+t_x)."""
        x, t_x, T, dx = self.x, self.t_x, self.T, self.distinct_x
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        common = (gammaln(r + dx) - gammaln(r) + r * np.log(alpha) - betaln(a, b))[self.x_index]
        log_to_end, log_to_last = np.log(alpha + T), np.log(alpha + t_x)
        alive_to_end = betaln(a, b + dx)[self.x_index] - (r + x) * log_to_end
        dx_safe = np.where(dx > 0, dx, 1.0)
        died_beta = betaln(a + 1, b + dx_safe - 1)[self.x_index]
        died_after_last = np.where(self.repeat, died_beta - (r + x) * log_to_last, -np.inf)
        return common, alive_to_end, died_after_last, log_to_end, log_to_last

    def __call__(self, params: BgNbdParams) -> np.ndarray:
        common, alive_to_end, died_after_last, *_ = self._terms(params)
        return common + np.logaddexp(alive_to_end, died_after_last)

    def weighted(self, params: BgNbdParams, weight: np.ndarray) -> tuple[float, np.ndarray]:
        """Σ weight · log-likelihood (as `__call__` gives it), and its derivatives by
        (r, alpha, a, b), in one pass.

        With L = log(e^A + e^B) for the two terms of `__call__` (A: alive to the end, B: died
        after the last purchase, none for x = 0), dL = w_A dA + w_B dB with w = e^(term − L);
        the Γ and B terms differentiate to digammas of r + x, b + x, a + b + x (one per
        distinct x)."""
        x, t_x, T, dx = self.x, self.t_x, self.T, self.distinct_x
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        at = self.x_index
        common, alive_to_end, died, log_to_end, log_to_last = self._terms(params)
        dx_safe = np.where(dx > 0, dx, 1.0)
        both = np.logaddexp(alive_to_end, died)
        w_end, w_last = np.exp(alive_to_end - both), np.exp(died - both)
        # per row: d = c + w_end · e + w_last · l; summed with the weights as dot products
        end, last = weight * w_end, weight * w_last
        total, to_end, to_last = weight.sum(), end.sum(), last.sum()
        psi_abx = digamma(a + b + dx)[at]
        psi_ab = digamma(a + b)
        d_r = (
            weight @ (digamma(r + dx) - digamma(r))[at]
            + total * np.log(alpha)
            - end @ log_to_end
            - last @ log_to_last
        )
        d_alpha = (
            total * r / alpha - end @ ((r + x) / (alpha + T)) - last @ ((r + x) / (alpha + t_x))
        )
        d_a = (
            total * (psi_ab - digamma(a))
            + to_end * digamma(a)
            + to_last * digamma(a + 1)
            - (end + last) @ psi_abx
        )
        d_b = (
            total * (psi_ab - digamma(b))
            + end @ digamma(b + dx)[at]
            + last @ digamma(b + dx_safe - 1)[at]
            - (end + last) @ psi_abx
        )
        return float(weight @ (common + both)), np.array([d_r, d_alpha, d_a, d_b])


def fit_bgnbd(frequency, recency, T, min_customers: int = 2) -> Fit:
    """Maximum-likelihood BG/NBD parameters; raises FitError when the data cannot support them."""
    x, t_x, T = _as_float(frequency, recency, T)
    if x.size < min_customers:
        raise FitError(f"BG/NBD needs at least {min_customers} customers, got {x.size}")
    if not np.any(x > 0):
        raise FitError("BG/NBD needs at least one repeat buyer")
    if np.any((x < 0) | (t_x < 0) | (t_x > T) | ~np.isfinite(T)):
        raise FitError("BG/NBD inputs need 0 <= recency <= T and frequency >= 0")
    (ux, ut, uT), weight = _compress(x, t_x, T)
    total = weight.sum()
    log_likelihood = _BgNbdLikelihood(ux, ut, uT)

    def neg_mean_ll(log_params: np.ndarray) -> float:
        ll = log_likelihood(BgNbdParams(*np.exp(log_params)))
        value = -(weight @ ll) / total
        return value if np.isfinite(value) else np.inf

    def with_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = BgNbdParams(*np.exp(log_params))
        return _mean_and_gradient(log_likelihood, params, log_params, weight)

    # start: r = 1, alpha = mean T (rate ≈ 1 purchase per calibration), a = b = 1
    start = np.log([1.0, max(float(np.mean(T)), 1e-3), 1.0, 1.0])
    log_params, value, message = _maximise(neg_mean_ll, with_gradient, start)
    # Customers who all buy at one pace leave no heterogeneity to fit: the likelihood keeps
    # rising as r and alpha grow together (same mean rate r/alpha, less variance), and where
    # the optimiser stops on that ridge depends on floating-point details of the CPU. Such a
    # fit is refused whatever its end point: one step further along the ridge is no worse.
    further = neg_mean_ll(log_params + np.log([10.0, 10.0, 1.0, 1.0]))
    if further <= value + 1e-9 * max(1.0, abs(value)):
        raise FitError(
            "BG/NBD is degenerate: r and alpha grow without bound together "
            "(purchase rates show no heterogeneity)"
        )
    params = BgNbdParams(*(float(v) for v in np.exp(log_params)))
    return Fit(params, float(-value * total), int(x.size), message)


def _death_odds_log(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """log of a/(b+x−1) · ((α+T)/(α+t_x))^(r+x): the odds that a repeat buyer has dropped out."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x_safe = np.where(x > 0, x, 1.0)
    log_odds = (
        np.log(a) - np.log(b + x_safe - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    return np.where(x > 0, log_odds, -np.inf)


def bgnbd_probability_alive(params: BgNbdParams, frequency, recency, T) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)).

    A one-time buyer is always alive (BG/NBD lets customers drop out only right after a purchase).
    """
    x, t_x, T = _as_float(frequency, recency, T)
    with np.errstate(over="ignore"):
        return expit(-_death_odds_log(params, x, t_x, T))


def bgnbd_expected_purchases(params: BgNbdParams, t, frequency, recency, T) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10).

    = P(alive) · (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; t/(α+T+t))]
    """
    x, t_x, T = _as_float(frequency, recency, T)
    t = np.asarray(t, dtype=np.float64)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    with np.errstate(over="ignore", invalid="ignore"):
        bracket = 1 - np.exp((r + x) * np.log1p(-z)) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        expected = (a + b + x - 1) / (a - 1) * bracket
    return bgnbd_probability_alive(params, x, t_x, T) * expected


# ---------------------------------------------------------------- Gamma-Gamma


def gamma_gamma_log_likelihood(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """Per-customer log-likelihood of the mean spend m_x of x purchases (Fader, Hardie & Lee 2005b).

    f(m_x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q · x^(px) · m_x^(px−1) / (γ + x m_x)^(px+q)
    """
    x, m = _as_float(frequency, monetary)
    p, q, g = params.p, params.q, params.gamma
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(g + x * m)
    )


class _GammaGammaLikelihood:
    """`gamma_gamma_log_likelihood` for fixed data: Γ terms once per distinct x, log(m) and
    log(x) once per fit; the same operations per row in the same order, so the same bits."""

    def __init__(self, frequency, monetary):
        self.x, self.m = _as_float(frequency, monetary)
        self.distinct_x, self.x_index = np.unique(self.x, return_inverse=True)
        self.x_index = self.x_index.reshape(-1)
        self.log_m, self.log_x = np.log(self.m), np.log(self.x)

    def _terms(self, params: GammaGammaParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: the Γ terms (per distinct x), p·x and log(γ + x·m)."""
        p, q, g = params.p, params.q, params.gamma
        dpx = p * self.distinct_x
        per_x = (gammaln(dpx + q) - gammaln(dpx) - gammaln(q) + q * np.log(g))[self.x_index]
        return per_x, p * self.x, np.log(g + self.x * self.m)

    def __call__(self, params: GammaGammaParams) -> np.ndarray:
        return self._rows(params, *self._terms(params))

    def _rows(self, params, per_x, px, log_spent) -> np.ndarray:
        """Per-row log-likelihood from `_terms`."""
        return per_x + (px - 1) * self.log_m + px * self.log_x - (px + params.q) * log_spent

    def weighted(self, params: GammaGammaParams, weight: np.ndarray) -> tuple[float, np.ndarray]:
        """Σ weight · log-likelihood (as `__call__` gives it), and its derivatives by
        (p, q, gamma), in one pass."""
        x, m = self.x, self.m
        p, q, g = params.p, params.q, params.gamma
        dpx = p * self.distinct_x
        per_x, px, log_spent = self._terms(params)
        value = weight @ self._rows(params, per_x, px, log_spent)
        psi_pxq = digamma(dpx + q)[self.x_index]
        wx, total = weight * x, weight.sum()
        d_p = wx @ (psi_pxq - digamma(dpx)[self.x_index] + self.log_m + self.log_x - log_spent)
        d_q = weight @ (psi_pxq - log_spent) + total * (np.log(g) - digamma(q))
        d_g = total * q / g - weight @ ((px + q) / (g + x * m))
        return float(value), np.array([d_p, d_q, d_g])


def fit_gamma_gamma(frequency, monetary, min_customers: int = 2) -> Fit:
    """Maximum-likelihood Gamma-Gamma parameters from repeat buyers (x > 0, m_x > 0) only."""
    x, m = _as_float(frequency, monetary)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if x.size < min_customers:
        raise FitError(
            f"Gamma-Gamma needs at least {min_customers} repeat buyers with spend, got {x.size}"
        )
    (ux, um), weight = _compress(x, m)
    total = weight.sum()
    log_likelihood = _GammaGammaLikelihood(ux, um)

    def neg_mean_ll(log_params: np.ndarray) -> float:
        ll = log_likelihood(GammaGammaParams(*np.exp(log_params)))
        value = -(weight @ ll) / total
        return value if np.isfinite(value) else np.inf

    def with_gradient(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = GammaGammaParams(*np.exp(log_params))
        return _mean_and_gradient(log_likelihood, params, log_params, weight)

    start = np.log([1.0, 2.0, max(float(np.mean(m)), 1e-3)])
    log_params, value, message = _maximise(neg_mean_ll, with_gradient, start)
    params = GammaGammaParams(*(float(v) for v in np.exp(log_params)))
    if params.q <= 1:
        raise FitError(f"Gamma-Gamma q = {params.q:.3g} <= 1: the mean spend is not finite")
    return Fit(params, float(-value * total), int(x.size), message)


def gamma_gamma_expected_value(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """E[spend per purchase | x, m_x] = (γ + x·m_x)·p / (p·x + q − 1).

    A weighted mean of the population mean p·γ/(q−1) and the customer's own mean m_x, the
    customer's weight growing with x; for x = 0 it is the population mean (m_x is ignored).
    """
    x, m = _as_float(frequency, monetary)
    m = np.where(x > 0, np.nan_to_num(np.maximum(m, 0.0)), 0.0)
    return (params.gamma + x * m) * params.p / (params.p * x + params.q - 1)


# ---------------------------------------------------------------- CLV


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency,
    recency,
    T,
    monetary,
    horizon_months: int,
    monthly_discount_rate: float = 0.0,
    days_per_unit: float = 1.0,
) -> np.ndarray:
    """Expected, discounted revenue over the next `horizon_months` months.

    CLV = Σ_{i=1..H} (E[purchases by month i] − E[purchases by month i−1]) · E[spend] / (1+d)^i,
    i.e. each month's expected purchases times the Gamma-Gamma spend, discounted at the end of
    the month (d = 0: undiscounted). A month is 30.4375 days; `days_per_unit` says how many days
    one unit of recency/T is (1 for days, 7 for weeks).
    """
    spend = gamma_gamma_expected_value(gamma_gamma, frequency, monetary)
    purchases = discounted_expected_purchases(
        bgnbd, frequency, recency, T, horizon_months, monthly_discount_rate, days_per_unit
    )
    return purchases * spend


def discounted_expected_purchases(
    bgnbd: BgNbdParams,
    frequency,
    recency,
    T,
    horizon_months: int,
    monthly_discount_rate: float = 0.0,
    days_per_unit: float = 1.0,
) -> np.ndarray:
    """Σ_{i=1..H} (E[purchases by month i] − E[purchases by month i−1]) / (1+d)^i: the purchase
    part of `customer_lifetime_value`, which depends on (x, t_x, T) only (not on spend)."""
    if horizon_months < 0:
        raise ValueError("horizon_months must be >= 0")
    x, t_x, T = _as_float(frequency, recency, T)
    month = DAYS_PER_MONTH / days_per_unit
    total = np.zeros_like(x)
    previous = np.zeros_like(x)
    for i in range(1, horizon_months + 1):
        cumulative = bgnbd_expected_purchases(bgnbd, i * month, x, t_x, T)
        total += (cumulative - previous) / (1 + monthly_discount_rate) ** i
        previous = cumulative
    return total
