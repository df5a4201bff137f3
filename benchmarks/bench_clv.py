"""Benchmark of the CLV models on a synthetic 1M-customer summary (day-granular, 2 years).

Run by hand: `.venv/bin/python benchmarks/bench_clv.py [customers]`; prints seconds and peak
memory per step (peak of Python/NumPy allocations via tracemalloc, and the process's max RSS).
Budget: fitting both models for 1M customers in under a minute.
"""

import resource
import sys
import time
import tracemalloc

import numpy as np

from ccv.analytics.clv import (
    BgNbdParams,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_probability_alive,
    customer_lifetime_value,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
)
from ccv.analytics.simulate import simulate_bgnbd, simulate_spend

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
# the CDNOW estimates, with alpha converted from weeks to days
TRUE_BGNBD = BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
TRUE_GAMMA_GAMMA = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


def step(name: str, fn):
    tracemalloc.reset_peak()
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(f"{name:<34} {seconds:8.2f} s   peak {peak:8.1f} MiB")
    return value, seconds


def main() -> None:
    tracemalloc.start()
    rng = np.random.default_rng(0)
    T = rng.integers(1, 731, N).astype(np.float64)  # first purchase up to two years ago
    (x, t_x), _ = step(
        "simulate BG/NBD summary", lambda: simulate_bgnbd(TRUE_BGNBD, T, rng, whole_days=True)
    )
    m, _ = step("simulate spend", lambda: simulate_spend(TRUE_GAMMA_GAMMA, x, rng))
    print(
        f"customers {N:,}  repeat buyers {int((x > 0).sum()):,}  "
        f"distinct (x, t_x, T) {len(np.unique(np.column_stack([x, t_x, T]), axis=0)):,}"
    )

    bg, s_bg = step("fit BG/NBD", lambda: fit_bgnbd(x, t_x, T))
    gg, s_gg = step("fit Gamma-Gamma", lambda: fit_gamma_gamma(x, m))
    _, s_pa = step("P(alive)", lambda: bgnbd_probability_alive(bg.params, x, t_x, T))
    _, s_ep = step(
        "expected purchases 90/180/365 d",
        lambda: [bgnbd_expected_purchases(bg.params, d, x, t_x, T) for d in (90, 180, 365)],
    )
    _, s_ev = step("expected order value", lambda: gamma_gamma_expected_value(gg.params, x, m))
    _, s_clv = step(
        "CLV 12 months, 1% monthly",
        lambda: customer_lifetime_value(bg.params, gg.params, x, t_x, T, m, 12, 0.01),
    )
    total = s_bg + s_gg + s_pa + s_ep + s_ev + s_clv
    print(f"BG/NBD   fitted {bg.params}")
    print(f"         true   {TRUE_BGNBD}")
    print(f"Gamma-G. fitted {gg.params}")
    print(f"         true   {TRUE_GAMMA_GAMMA}")
    print(f"fit + predict total {total:.2f} s (budget 60 s)")
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
