"""numpy helpers of the identity modules: the same answers as numpy's own functions."""

from __future__ import annotations

import numpy as np

from ccv.identity.arrays import lex_order, unique_sorted


def test_unique_sorted_equals_np_unique():
    rng = np.random.default_rng(3)
    for values in (
        rng.integers(-(2**62), 2**62, 5_000),  # 64-bit key hashes, negative ones too
        rng.integers(0, 50, 5_000),  # record positions with many repeats
        np.array([7]),
        np.zeros(0, dtype=np.int64),
    ):
        got = unique_sorted(values)
        assert got.dtype == values.dtype
        np.testing.assert_array_equal(got, np.unique(values))


def test_lex_order_equals_np_lexsort():
    rng = np.random.default_rng(5)
    for n in (0, 1, 7, 5_000):
        major = rng.integers(0, 40, n)
        minor = rng.integers(0, 1_000, n)  # with ties in both: the order stays stable
        np.testing.assert_array_equal(lex_order(major, minor, 1_000), np.lexsort((minor, major)))
