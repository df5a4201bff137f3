"""Fellegi–Sunter match weights with unsupervised estimation of m, u and the prior.

Why: no one labels customer pairs, yet the evidence of each level must be weighed: "same
birth date" is strong, "same city" weak, "first names differ" mildly negative. Fellegi–Sunter
gives each level a weight ``log2(m / u)``, where

* ``m`` = P(level | the records are the same person),
* ``u`` = P(level | they are not),

and a pair's ``match_weight`` = prior log-odds ``log2(λ / (1 − λ))`` + Σ weights, where λ is the
probability that two random records match; ``match_probability`` = 2^w / (1 + 2^w). Both u
and λ refer to random pairs, so weights and prior are on the same footing.

Estimation:

1. `estimate_u` compares *random* record pairs: nearly all are non-matches, so the level shares
   there are u (as in Splink).
2. `estimate_m` runs expectation–maximisation on the candidate pairs: each pair's match
   probability (E-step) re-weights the level counts that give m and the share of matches
   (M-step). Work is done on the distinct level patterns with their counts, so millions of
   pairs cost the same as a few thousand patterns. Unlike Splink, the non-match level
   distribution *among candidates* is re-estimated too by default (see ``u_in_em``): with
   broad blocking, holding it at the random-pair u made EM call every candidate a match.
3. `score` adds the weights, the TF adjustments and the guards (`Guard`).

Worked example: first names equal, m = 0.90, u = 0.01 → weight log2(90) = +6.5 bits; first
names differ, m = 0.05, u = 0.95 → −4.2 bits. A null level is no evidence: weight 0.

Term-frequency (TF) adjustment, for comparisons with a ``tf_column`` (first name, last name,
e-mail): u of the exact level is an average over all values, but agreeing on "smith" happens by
chance far more often than agreeing on "featherstonehaugh". For a pair at the exact level with
value v, the weight gains ``log2(u_exact / tf(v))``, where tf(v) is v's relative frequency
among the records (floored at ``tf_floor``) — so the exact-level weight becomes
``log2(m_exact / tf(v))``. A value more common than average lowers the weight, a rare one
raises it. Adjustments are clipped to ±``tf_clip`` bits. For e-mail this also weakens
household addresses shared by several people.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ccv.identity.blocking import RecordKeys
from ccv.identity.comparisons import DEFAULT_COMPARISONS, Comparison, compare

__all__ = [
    "DEFAULT_GUARDS",
    "ComparisonParams",
    "Guard",
    "Params",
    "estimate_m",
    "estimate_u",
    "score",
]

PROBABILITY_FLOOR = 1e-6
"""Smallest m or u: a level never observed must not get an infinite weight."""


@dataclass
class ComparisonParams:
    """m and u per level index (see `ccv.identity.comparisons` for the index convention)."""

    name: str
    labels: dict[int, str]
    m: dict[int, float]
    u: dict[int, float]
    tf: bool = False  # whether TF adjustment applies to this comparison's exact level
    exact_level: int | None = None

    def weight(self, level: int) -> float:
        """log2(m/u) of a level; 0 for null (-1)."""
        if level == -1:
            return 0.0
        return float(np.log2(self.m[level] / self.u[level]))


@dataclass
class Params:
    """Everything needed to score: per-comparison m/u and the prior λ (share of matches
    among candidate pairs). Saved as JSON so later runs can reuse it and ``explain`` can
    print it."""

    comparisons: dict[str, ComparisonParams]
    lambda_: float = 1e-4
    meta: dict = field(default_factory=dict)

    def prior_weight(self) -> float:
        return float(np.log2(self.lambda_ / (1 - self.lambda_)))

    def to_json(self) -> str:
        return json.dumps(
            {
                "lambda": self.lambda_,
                "meta": self.meta,
                "comparisons": [
                    {
                        "name": c.name,
                        "tf": c.tf,
                        "exact_level": c.exact_level,
                        "levels": [
                            {
                                "level": level,
                                "label": c.labels.get(level, ""),
                                "m": c.m.get(level),
                                "u": c.u.get(level),
                                "weight": None if level == -1 else c.weight(level),
                            }
                            for level in sorted(c.labels)
                        ],
                    }
                    for c in self.comparisons.values()
                ],
            },
            indent=2,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Params:
        data = json.loads(text)
        comparisons = {}
        for c in data["comparisons"]:
            levels = c["levels"]
            comparisons[c["name"]] = ComparisonParams(
                name=c["name"],
                labels={lv["level"]: lv["label"] for lv in levels},
                m={lv["level"]: lv["m"] for lv in levels if lv["m"] is not None},
                u={lv["level"]: lv["u"] for lv in levels if lv["u"] is not None},
                tf=c["tf"],
                exact_level=c["exact_level"],
            )
        return cls(comparisons=comparisons, lambda_=data["lambda"], meta=data.get("meta", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Params:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def table(self) -> pd.DataFrame:
        """One row per comparison level: comparison, level, label, m, u, weight."""
        rows = [
            {
                "comparison": c.name,
                "level": level,
                "label": c.labels[level],
                "m": c.m.get(level, np.nan),
                "u": c.u.get(level, np.nan),
                "weight": c.weight(level) if level in c.m else np.nan,
            }
            for c in self.comparisons.values()
            for level in sorted(c.labels, reverse=True)
        ]
        return pd.DataFrame(rows)


def _random_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``n_pairs`` random position pairs i < j, i ≠ j (with replacement; negligible repeats)."""
    i = rng.integers(0, n, size=n_pairs)
    j = rng.integers(0, n - 1, size=n_pairs)
    j = j + (j >= i)  # uniform over the n - 1 others
    return np.minimum(i, j), np.maximum(i, j)


def estimate_u(
    records: pd.DataFrame,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    n_pairs: int = 1_000_000,
    seed: int = 0,
    keys: RecordKeys | None = None,
) -> dict[str, dict[int, float]]:
    """u per comparison level from ``n_pairs`` random record pairs.

    Why random pairs: among n records only about n of the n²/2 pairs match, so random pairs
    are non-matches with overwhelming probability, and their level shares are u. Shares are
    among non-null pairs (null carries no weight). Levels never seen get `PROBABILITY_FLOOR`
    (e.g. "names swapped" among random pairs): raise ``n_pairs`` if rare levels matter.
    Returns ``{comparison name: {level: u}}`` (no entry for -1). ``keys``: the records'
    `RecordKeys`, shared with blocking and the candidate pairs' comparison.
    """
    n = len(records)
    if n < 2:
        raise ValueError("need at least two records to estimate u")
    rng = np.random.default_rng(seed)
    i, j = _random_pairs(n, n_pairs, rng)
    record_idx = records["record_idx"].to_numpy(dtype=np.int64)
    pairs = pd.DataFrame({"left": record_idx[i], "right": record_idx[j]})
    levels = compare(records, pairs, comparisons, keys)
    out = {}
    for c in comparisons:
        observed = levels[f"{c.name}_level"].to_numpy()
        counts = np.bincount(observed[observed >= 0], minlength=len(c.levels) + 1)
        total = max(int(counts.sum()), 1)
        u = np.maximum(counts / total, PROBABILITY_FLOOR)
        out[c.name] = {level: float(u[level] / u.sum()) for level in range(len(c.levels) + 1)}
    return out


def level_patterns(
    levels_frame: pd.DataFrame, columns: Sequence[str]
) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct level patterns of `columns` (one int64 array per column, patterns in order
    of first appearance) and how many pairs have each: what
    ``levels_frame[columns].value_counts(sort=False)`` gives.

    Why not `value_counts`: its group-by makes an int64 code array per column (~0.8 GB for ten
    columns of a million-customer night's ~10M pairs), on top of everything the night holds —
    the full night's memory peak. Here a pattern is one integer (a level of -1..k is a digit
    of base k + 2), factorised once by hashing."""
    digits = [levels_frame[col].to_numpy() for col in columns]
    bases = [int(d.max(initial=-1)) + 2 for d in digits]
    if float(np.prod(np.asarray(bases, dtype=float))) >= 2.0**62:  # no room in an int64
        patterns = levels_frame[list(columns)].value_counts(sort=False).reset_index(name="count")
        return (
            [patterns[col].to_numpy(dtype=np.int64) for col in columns],
            patterns["count"].to_numpy(dtype=np.int64),
        )
    packed = np.zeros(len(levels_frame), dtype=np.int64)
    for d, base in zip(digits, bases, strict=True):
        packed *= base
        packed += d.astype(np.int64) + 1
    codes, uniques = pd.factorize(packed)  # in order of first appearance
    del packed
    counts = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    del codes
    arrays = []
    rest = np.asarray(uniques, dtype=np.int64)
    for base in reversed(bases):
        rest, digit = np.divmod(rest, base)
        arrays.append(digit - 1)
    return arrays[::-1], counts


def _initial_m(n_levels: int) -> np.ndarray:
    """Starting m for levels 0..k: most mass on the closest levels, little on "else"."""
    raw = np.array([0.05] + [2.0**level for level in range(1, n_levels + 1)], dtype=float)
    return raw / raw.sum()


def estimate_m(
    levels_frame: pd.DataFrame,
    u: dict[str, dict[int, float]],
    n_records: int,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    *,
    u_in_em: str = "free",
    initial_lambda: float = 0.3,
    max_iterations: int = 200,
    tolerance: float = 1e-5,
) -> Params:
    """m per level and the prior λ by EM on the candidate pairs' levels.

    E-step: posterior P(match | levels) of every distinct level pattern. M-step: m = the
    posterior-weighted share of each level among non-null pairs, λ_candidates = the mean
    posterior. Stops when no probability moves by more than ``tolerance`` (or after
    ``max_iterations``); m below `PROBABILITY_FLOOR` is floored (levels unseen among matches).

    ``u_in_em``:

    * ``"fixed"`` — u held at the random-pair values during EM (Splink's approach). With broad
      blocking this degenerates: candidate non-matches agree on their blocked fields far
      more often than random pairs do, random-pair u cannot explain them, and EM assigns them
      to the match class (λ → 1, m = the candidates' level mix).
    * ``"free"`` (default) — the non-match distribution *among candidates* is re-estimated
      in the M-step as a nuisance parameter, which absorbs that blocking bias; only m and
      the expected number of matches are kept.

    Either way the returned `Params` hold the random-pair ``u`` (the population the weights
    are defined on) and ``lambda_`` = P(two random records match) = expected matches among
    candidates / (n_records·(n_records−1)/2), so weights and prior are on the same footing.
    ``meta`` records iterations, convergence and λ among candidates.
    """
    if u_in_em not in ("fixed", "free"):
        raise ValueError("u_in_em must be 'fixed' or 'free'")
    names = [c.name for c in comparisons]
    columns = [f"{name}_level" for name in names]
    level_arrays, counts = level_patterns(levels_frame, columns)
    weights = counts.astype(float)
    u_random = []
    for c in comparisons:
        u_c = np.array(
            [u[c.name].get(level, PROBABILITY_FLOOR) for level in range(len(c.levels) + 1)]
        )
        u_random.append(np.maximum(u_c, PROBABILITY_FLOOR))
    u_arrays = [x.copy() for x in u_random]
    m_arrays = [_initial_m(len(c.levels)) for c in comparisons]
    lam = initial_lambda

    def pattern_log(prob_arrays: list[np.ndarray]) -> np.ndarray:
        total = np.zeros(len(weights))
        for lv, p_c in zip(level_arrays, prob_arrays, strict=True):
            total += np.where(lv >= 0, np.log(p_c[np.maximum(lv, 0)]), 0.0)
        return total

    def shares(pw: np.ndarray, old: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for lv, p_c in zip(level_arrays, old, strict=True):
            seen = lv >= 0
            sums = np.bincount(lv[seen], weights=pw[seen], minlength=len(p_c))
            total = sums.sum()
            new = sums / total if total > 0 else p_c
            new = np.maximum(new, PROBABILITY_FLOOR)
            out.append(new / new.sum())
        return out

    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - reported in meta
        log_odds = np.log(lam) - np.log1p(-lam) + pattern_log(m_arrays) - pattern_log(u_arrays)
        posterior = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))
        new_m = shares(posterior * weights, m_arrays)
        new_u = shares((1 - posterior) * weights, u_arrays) if u_in_em == "free" else u_arrays
        new_lam = float(np.clip((posterior * weights).sum() / weights.sum(), 1e-9, 1 - 1e-9))
        change = max(
            abs(new_lam - lam),
            max(float(np.abs(a - b).max()) for a, b in zip(new_m, m_arrays, strict=True)),
            max(float(np.abs(a - b).max()) for a, b in zip(new_u, u_arrays, strict=True)),
        )
        m_arrays, u_arrays, lam = new_m, new_u, new_lam
        if change < tolerance:
            converged = True
            break
    expected_matches = lam * weights.sum()
    total_pairs = n_records * (n_records - 1) / 2
    prior = float(np.clip(expected_matches / max(total_pairs, 1.0), 1e-12, 0.5))
    params = {}
    for c, m_c, u_c in zip(comparisons, m_arrays, u_random, strict=True):
        params[c.name] = ComparisonParams(
            name=c.name,
            labels=c.labels(),
            m={level: float(m_c[level]) for level in range(len(m_c))},
            u={level: float(u_c[level]) for level in range(len(u_c))},
            tf=c.tf_column is not None and c.exact_level() is not None,
            exact_level=c.exact_level(),
        )
    return Params(
        comparisons=params,
        lambda_=prior,
        meta={
            "em_iterations": iteration,
            "em_converged": converged,
            "u_in_em": u_in_em,
            "candidate_pairs": int(weights.sum()),
            "lambda_candidates": lam,
            "expected_matches": float(expected_matches),
            "n_records": int(n_records),
        },
    )


@dataclass(frozen=True)
class Guard:
    """A level combination that rules a match out, whatever the other evidence says.

    Why: Fellegi–Sunter assumes comparisons independent given match status, which households
    break: two people at one address share surname, postcode, city, often e-mail and phone,
    and those agreements add up to +40 bits against −10 for different first names and birth
    dates. A guard fires when every listed comparison is at one of its listed levels; the
    pair's ``match_weight`` is then capped at ``cap`` (``match_probability`` ≈ 0).
    """

    name: str
    levels: dict[str, tuple[int, ...]]
    cap: float = -20.0


DEFAULT_GUARDS: tuple[Guard, ...] = (
    # A different first name (not a typo, nickname, initial or swap) with no birth date to
    # vouch for the pair (different or missing): two members of one household.
    Guard("first_name_differs_no_birth_date", {"first_name": (0,), "birth_date": (0, -1)}),
    # A different birth date (not a day/month swap or one-character typo) with no first name
    # to vouch for the pair (different or missing).
    Guard("birth_date_differs_no_first_name", {"first_name": (0, -1), "birth_date": (0,)}),
)
"""On 200k synthetic records with 12% household members these raised pairwise precision at
p ≥ 0.99 from 0.89 to 0.98 for a recall loss of 0.009."""


def score(
    levels_frame: pd.DataFrame,
    params: Params,
    tf_adjust: bool = True,
    guards: Sequence[Guard] = DEFAULT_GUARDS,
    tf_floor: float = 1e-7,
    tf_clip: float = 10.0,
) -> pd.DataFrame:
    """Match weight and probability of every pair.

    Returns ``left``, ``right``, one float32 ``<name>_weight`` per comparison in ``params``
    (log2(m/u) of the pair's level, 0 for null, plus the TF adjustment where it applies),
    ``match_weight`` (prior log-odds + Σ weights, capped where a guard fires),
    ``guarded`` (a guard fired) and ``match_probability``.
    TF adjustment needs the ``<name>_tf`` columns that `compare` adds; without them (or with
    ``tf_adjust=False``) plain level weights are used.
    """
    out = {"left": levels_frame["left"].to_numpy(), "right": levels_frame["right"].to_numpy()}
    total = np.full(len(levels_frame), params.prior_weight(), dtype=np.float64)
    for name, c in params.comparisons.items():
        levels = levels_frame[f"{name}_level"].to_numpy(dtype=np.int64)
        n = max(c.m) + 1
        table = np.array([c.weight(level) if level in c.m else 0.0 for level in range(n)])
        weight = np.where(levels >= 0, table[np.clip(levels, 0, n - 1)], 0.0)
        tf_col = f"{name}_tf"
        if tf_adjust and c.tf and c.exact_level is not None and tf_col in levels_frame:
            tf = levels_frame[tf_col].to_numpy(dtype=np.float64)
            at = (levels == c.exact_level) & ~np.isnan(tf)
            adjust = np.log2(c.u[c.exact_level] / np.maximum(tf[at], tf_floor))
            weight[at] += np.clip(adjust, -tf_clip, tf_clip)
        out[f"{name}_weight"] = weight.astype(np.float32)
        total += weight
    guarded = np.zeros(len(levels_frame), dtype=bool)
    for guard in guards:
        if any(f"{name}_level" not in levels_frame for name in guard.levels):
            continue  # a guard on comparisons this model does not have
        fires = np.ones(len(levels_frame), dtype=bool)
        for name, allowed in guard.levels.items():
            fires &= np.isin(levels_frame[f"{name}_level"].to_numpy(), allowed)
        total = np.where(fires, np.minimum(total, guard.cap), total)
        guarded |= fires
    out["match_weight"] = total.astype(np.float32)
    out["guarded"] = guarded
    out["match_probability"] = (1.0 / (1.0 + np.exp2(-np.clip(total, -1000, 1000)))).astype(
        np.float32
    )
    return pd.DataFrame(out, copy=False)  # the columns as computed: no 2-D block copy
