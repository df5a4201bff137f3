"""Draw synthetic customer summaries from known BG/NBD and Gamma-Gamma parameters.

Why: a fit can only be trusted if it gives back the parameters that generated the data, and the
benchmark needs a million realistic customers without a million real ones. Vectorised over
customers; the loop runs once per purchase number, not per customer.
"""

from __future__ import annotations

import numpy as np

from ccv.analytics.clv import BgNbdParams, GammaGammaParams


def simulate_bgnbd(
    params: BgNbdParams, T, rng: np.random.Generator, whole_days: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, recency) of customers observed for T after their first purchase.

    Each customer buys at rate λ ~ Gamma(r, 1/α) and, after every REPEAT purchase, drops out
    with probability p ~ Beta(a, b) (in BG/NBD nobody drops out at the first purchase, which is
    why a one-time buyer is always "alive"). With `whole_days` purchase times
    are truncated to whole days and purchases on one day count once, like `customer_value`.
    """
    T = np.asarray(T, dtype=np.float64)
    n = T.size
    rate = rng.gamma(params.r, 1 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    now = np.zeros(n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    last_day = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / rate[idx])
        bought = now[idx] <= T[idx]
        hit = idx[bought]
        if whole_days:
            day = np.floor(now[hit])
            new_day = day > last_day[hit]
            x[hit[new_day]] += 1
            t_x[hit[new_day]] = day[new_day]
            last_day[hit] = day
        else:
            x[hit] += 1
            t_x[hit] = now[hit]
        active[idx[~bought]] = False
        active[hit] = rng.random(hit.size) >= drop[hit]
    return x, t_x


def simulate_spend(params: GammaGammaParams, frequency, rng: np.random.Generator) -> np.ndarray:
    """Mean spend of each customer's `frequency` repeat purchases (NaN when frequency is 0)."""
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(params.q, 1 / params.gamma, x.size)
    shape = params.p * np.maximum(x, 1)
    mean = rng.gamma(shape, 1 / (nu * np.maximum(x, 1)))
    return np.where(x > 0, mean, np.nan)
