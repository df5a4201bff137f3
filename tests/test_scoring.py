"""Fellegi–Sunter scoring: EM recovers known parameters, TF adjustment, monotonicity, JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ccv.identity.comparisons import (
    DEFAULT_COMPARISONS,
    LAST_NAME,
    Comparison,
    compare,
    exact,
    jaro_winkler,
)
from ccv.identity.partitions import term_frequencies
from ccv.identity.scoring import (
    PROBABILITY_FLOOR,
    ComparisonParams,
    Guard,
    Params,
    estimate_m,
    estimate_u,
    level_patterns,
    score,
)

# Three comparisons with 3, 2 and 4 non-null levels (0 = else ... k = strictest).
TRUE_M = {
    "a": [0.05, 0.15, 0.80],
    "b": [0.10, 0.90],
    "c": [0.02, 0.08, 0.20, 0.70],
}
TRUE_U = {
    "a": [0.90, 0.08, 0.02],
    "b": [0.95, 0.05],
    "c": [0.85, 0.10, 0.04, 0.01],
}
TRUE_LAMBDA = 0.2
NULL_SHARE = 0.1


def toy_comparisons() -> list[Comparison]:
    """Comparisons with the right number of levels (their conditions are not evaluated)."""
    out = []
    for name, m in TRUE_M.items():
        levels = tuple(jaro_winkler(name, 0.99 - 0.01 * i) for i in range(len(m) - 1))
        out.append(Comparison(name, levels, null_when=(name,)))
    return out


def simulate(n: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    match = rng.random(n) < TRUE_LAMBDA
    frame = {"left": np.arange(n), "right": np.arange(n) + n}
    for name in TRUE_M:
        m, u = np.array(TRUE_M[name]), np.array(TRUE_U[name])
        level = np.where(match, rng.choice(len(m), n, p=m), rng.choice(len(u), n, p=u)).astype(
            np.int8
        )
        level[rng.random(n) < NULL_SHARE] = -1  # missing on one side: no evidence
        frame[f"{name}_level"] = level
    return pd.DataFrame(frame), match


@pytest.mark.parametrize("u_in_em", ["free", "fixed"])
def test_em_recovers_known_m_and_lambda(u_in_em):
    levels, match = simulate(200_000)
    u = {name: dict(enumerate(values)) for name, values in TRUE_U.items()}
    n_records = 100_000
    params = estimate_m(levels, u, n_records, toy_comparisons(), u_in_em=u_in_em)
    assert params.meta["em_converged"]
    for name, m in TRUE_M.items():
        got = [params.comparisons[name].m[level] for level in range(len(m))]
        assert got == pytest.approx(m, abs=0.02), name
        # scoring uses the random-pair u it was given
        assert params.comparisons[name].u[0] == pytest.approx(TRUE_U[name][0])
    assert params.meta["lambda_candidates"] == pytest.approx(TRUE_LAMBDA, abs=0.01)
    # the stored prior is per random pair: expected matches / all pairs of n_records
    expected = params.meta["expected_matches"] / (n_records * (n_records - 1) / 2)
    assert params.lambda_ == pytest.approx(expected)
    assert params.meta["expected_matches"] == pytest.approx(match.sum(), rel=0.05)


def test_unseen_level_gets_floor_not_infinity():
    levels, _ = simulate(20_000)
    levels.loc[levels["b_level"] == 1, "b_level"] = 0  # level 1 of b never observed
    u = {name: dict(enumerate(values)) for name, values in TRUE_U.items()}
    params = estimate_m(levels, u, 10_000, toy_comparisons())
    assert params.comparisons["b"].m[1] == pytest.approx(PROBABILITY_FLOOR, rel=0.5)
    assert np.isfinite(params.comparisons["b"].weight(1))


def test_scores_monotone_in_level():
    levels, _ = simulate(50_000)
    u = {name: dict(enumerate(values)) for name, values in TRUE_U.items()}
    params = estimate_m(levels, u, 10_000, toy_comparisons())
    for name, m in TRUE_M.items():
        # vary one comparison's level, the others fixed at "else"
        others = {f"{c}_level": [0] * len(m) for c in TRUE_M}
        frame = pd.DataFrame({"left": 0, "right": 1, **others})
        frame[f"{name}_level"] = np.arange(len(m))
        weights = score(frame, params, guards=())["match_weight"].to_numpy()
        assert (np.diff(weights) > 0).all(), name
    # null is no evidence: weight 0
    frame = pd.DataFrame({"left": [0], "right": [1], **{f"{c}_level": [-1] for c in TRUE_M}})
    out = score(frame, params, guards=())
    assert out["match_weight"].iloc[0] == pytest.approx(params.prior_weight(), abs=1e-5)
    assert (out[[f"{c}_weight" for c in TRUE_M]] == 0).all(axis=None)


def name_params() -> Params:
    last = ComparisonParams(
        name="last_name",
        labels=LAST_NAME.labels(),
        m={0: 0.05, 1: 0.05, 2: 0.05, 3: 0.05, 4: 0.80},
        u={0: 0.96, 1: 0.01, 2: 0.01, 3: 0.005, 4: 0.015},
        tf=True,
        exact_level=4,
    )
    return Params(comparisons={"last_name": last}, lambda_=1e-4)


def test_tf_adjustment_rare_surname_beats_common():
    records = pd.DataFrame(
        {
            "record_idx": np.arange(103, dtype=np.int64),
            # 100 smiths and a pair of featherstonehaughs (plus one stray)
            "std_last_name": ["smith"] * 100 + ["featherstonehaugh"] * 2 + ["lee"],
            "std_first_name": [f"f{i}" for i in range(103)],
            "std_first_name_key": [f"f{i}" for i in range(103)],
        }
    )
    pairs = pd.DataFrame({"left": [0, 100], "right": [1, 101]})
    levels = term_frequencies(
        records, compare(records, pairs, [LAST_NAME]), comparisons=[LAST_NAME]
    )
    assert levels["last_name_level"].tolist() == [4, 4]  # both exact
    params = name_params()
    scored = score(levels, params, guards=())
    common, rare = scored["last_name_weight"].tolist()
    assert rare > common
    # exact-level weight becomes log2(m / tf(value))
    assert common == pytest.approx(np.log2(0.80 / (100 / 103)), abs=1e-4)
    assert rare == pytest.approx(np.log2(0.80 / (2 / 103)), abs=1e-4)
    # without TF both get log2(m/u)
    plain = score(levels, params, tf_adjust=False, guards=())["last_name_weight"]
    assert plain.tolist() == pytest.approx([np.log2(0.80 / 0.015)] * 2, abs=1e-4)


def test_guard_caps_weight():
    params = name_params()
    frame = pd.DataFrame({"left": [0, 0], "right": [1, 2], "last_name_level": [4, 0]})
    guard = Guard("surname_differs", {"last_name": (0,)}, cap=-30)
    out = score(frame, params, guards=[guard])
    assert out["guarded"].tolist() == [False, True]
    assert out["match_weight"].iloc[1] == pytest.approx(-30)
    assert out["match_probability"].iloc[1] < 1e-8


def test_params_json_roundtrip(tmp_path):
    levels, _ = simulate(10_000)
    u = {name: dict(enumerate(values)) for name, values in TRUE_U.items()}
    params = estimate_m(levels, u, 10_000, toy_comparisons())
    path = tmp_path / "params.json"
    params.save(path)
    loaded = Params.load(path)
    assert loaded.lambda_ == pytest.approx(params.lambda_)
    assert loaded.meta == params.meta
    for name, c in params.comparisons.items():
        assert loaded.comparisons[name].m == pytest.approx(c.m)
        assert loaded.comparisons[name].u == pytest.approx(c.u)
        assert loaded.comparisons[name].labels == c.labels
    a = score(levels, params)["match_weight"]
    b = score(levels, loaded)["match_weight"]
    assert np.allclose(a, b)
    table = loaded.table()
    assert {"comparison", "level", "label", "m", "u", "weight"} <= set(table.columns)


def test_estimate_u_from_random_pairs():
    rng = np.random.default_rng(0)
    n = 4000
    records = pd.DataFrame(
        {
            "record_idx": np.arange(n, dtype=np.int64) * 3,
            "std_city": pd.array(rng.choice(["a", "b", "c", "d"], n), dtype="str"),
        }
    )
    city = Comparison("city", (exact("std_city"),), null_when=("std_city",))
    u = estimate_u(records, [city], n_pairs=200_000, seed=1)
    # four equally common cities: P(same city) for two random records is 1/4
    assert u["city"][1] == pytest.approx(0.25, abs=0.01)
    assert u["city"][0] == pytest.approx(0.75, abs=0.01)


def test_default_comparisons_end_to_end():
    records = pd.DataFrame(
        {
            "record_idx": np.arange(6, dtype=np.int64),
            "std_first_name": ["robert", "bob", "ann", "ann", "carl", "dina"],
            "std_first_name_key": ["robert", "robert", "ann", "ann", "carl", "dina"],
            "std_last_name": ["smith", "smith", "lee", "lee", "smith", "lee"],
            "std_email": ["r@x.com", "r@x.com", None, "ann@y.com", "r@x.com", None],
            "std_email_key": ["r@x.com", "r@x.com", None, "ann@y.com", "r@x.com", None],
            "std_phone": [None] * 6,
            "std_postcode": ["A1 1AA"] * 6,
            "std_city": [None] * 6,
            "std_loyalty_id": [None] * 6,
            "std_birth_date": pd.array([None] * 6, dtype="date32[pyarrow]"),
        }
    )
    levels = compare(records, pd.DataFrame({"left": [0, 0], "right": [1, 4]}), DEFAULT_COMPARISONS)
    u = estimate_u(records, DEFAULT_COMPARISONS, n_pairs=1000)
    params = estimate_m(levels, u, len(records), DEFAULT_COMPARISONS)
    out = score(levels, params)
    # robert/bob smith is a nickname match; robert/carl smith at one address sharing an
    # e-mail is a household: different first name and no birth date -> guarded
    assert out["guarded"].tolist() == [False, True]
    assert out["match_probability"].iloc[0] > out["match_probability"].iloc[1]


@pytest.mark.parametrize("n_columns", [3, 40])  # 40 columns of base 4 overflow one int64
def test_level_patterns_are_the_value_counts_of_the_level_columns(n_columns):
    """EM runs on the distinct level patterns in order of first appearance with their counts:
    exactly what pandas' ``value_counts(sort=False)`` gives, whether the patterns are packed
    into one integer or (too many columns for that) counted by pandas."""
    rng = np.random.default_rng(n_columns)
    columns = [f"c{i}_level" for i in range(n_columns)]
    frame = pd.DataFrame(
        {c: rng.integers(-1, 3, size=5_000).astype(np.int8) for c in columns}
    ).assign(left=0)
    frame.loc[::7, columns[0]] = -1  # a column's null level is a pattern digit like any other
    expected = frame[columns].value_counts(sort=False)
    arrays, counts = level_patterns(frame, columns)
    assert list(zip(*(a.tolist() for a in arrays), strict=True)) == list(expected.index)
    assert counts.tolist() == expected.tolist()
    assert counts.sum() == len(frame)
