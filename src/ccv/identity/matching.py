"""Probabilistic links between customer records: block → compare → estimate → score.

Customer records (CRM rows, or any file given to `ccv resolve`) carry names, birth dates and
addresses, so they are matched with Fellegi–Sunter weights: candidate pairs from several blocking
rules (`blocking.py`), comparison levels per field (`comparisons.py`), u from random pairs and m by
expectation–maximisation without labels, with term-frequency adjustment (`scoring.py`). Parameters
are estimated afresh every run, on that run's records, and saved in `match_params` so that
`ccv explain` can show how each weight came about.

Pairs at or above `match_probability` become links; those at or above `strong_match_probability`
are *strong* (they form clusters), the rest *weak* (they may only attach a lone CRM record) — see
`clustering.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ccv.identity.arrays import pair_chunks
from ccv.identity.blocking import DEFAULT_RULES, RecordKeys, candidate_pairs
from ccv.identity.comparisons import DEFAULT_COMPARISONS, compare
from ccv.identity.partitions import LOCAL, Mapper, compare_pairs, term_frequencies
from ccv.identity.scoring import Params, estimate_m, estimate_u, score
from ccv.identity.threads import run_together

COMPARISON_NAMES = tuple(c.name for c in DEFAULT_COMPARISONS)
DEFAULT_PARAMS_PATH = Path(__file__).with_name("default_match_params.json")


def probability_to_weight(probability: float) -> float:
    """Match weight (log2 odds) of a match probability: 0.99 → 6.6, 0.9999 → 13.3."""
    return math.log2(probability / (1 - probability))


@dataclass(frozen=True)
class MatchResult:
    """Scored links among customer records, with the evidence behind each."""

    links: pd.DataFrame  # left, right (positions), weight, probability, rule + evidence columns
    params: Params | None
    candidate_pairs: int
    oversized_blocks: pd.DataFrame  # rule, key, size: blocks too large to compare, not exploded


EMPTY = pd.DataFrame(
    {
        "left": pd.Series(dtype="int64"),
        "right": pd.Series(dtype="int64"),
        "weight": pd.Series(dtype=float),
        "probability": pd.Series(dtype=float),
        "rule": pd.Series(dtype=object),
    }
)


def estimate_params(
    std: pd.DataFrame, positions: np.ndarray, max_block_size: int, seed: int = 0
) -> Params:
    """m/u/λ estimated on the records at `positions` (u from random pairs, m by EM)."""
    records = std.iloc[positions].assign(record_idx=positions.astype(np.int64))
    keys = RecordKeys(records)
    pairs, _ = candidate_pairs(records, DEFAULT_RULES, max_block_size, keys)
    _, params = compare_and_estimate(
        records, lambda: compare(records, pairs, DEFAULT_COMPARISONS, keys), keys, seed
    )
    return params


def compare_and_estimate(
    records: pd.DataFrame,
    compare_candidates: Callable[[], pd.DataFrame],
    keys: RecordKeys,
    seed: int,
) -> tuple[pd.DataFrame, Params]:
    """The candidate pairs' comparison levels (`compare_candidates()`) and m/u/λ estimated from
    them. u comes from random pairs and does not depend on the candidates, so it is estimated
    beside the comparisons, on the other core (`threads.run_together`)."""
    n = len(records)
    levels, u = run_together(
        compare_candidates,
        lambda: estimate_u(
            records,
            DEFAULT_COMPARISONS,
            n_pairs=min(1_000_000, n * (n - 1) // 2),
            seed=seed,
            keys=keys,
        ),
    )
    return levels, estimate_m(levels, u, n_records=n, comparisons=DEFAULT_COMPARISONS)


def probabilistic_links(
    std: pd.DataFrame,
    positions: np.ndarray,
    match_probability: float,
    max_block_size: int,
    min_records_to_estimate: int = 1000,
    seed: int = 0,
    mapper: Mapper = LOCAL,
) -> MatchResult:
    """Scored links among the records of `std` at `positions` (labels of `std` are positions).

    With fewer than `min_records_to_estimate` records, EM has too few pairs to learn from; the
    parameters shipped with ccv (estimated on held-out benchmark data, `DEFAULT_PARAMS_PATH`)
    are used instead, without term-frequency adjustment (how common a name is cannot be told
    from a handful of records), so a small file still resolves sensibly.

    `mapper` runs the comparison of the candidate pairs, split into independent partitions
    (`partitions.py`); the result is the same whatever it is.
    """
    records = std.iloc[positions].assign(record_idx=positions.astype(np.int64))
    if len(records) < 2:
        return MatchResult(EMPTY.copy(), None, 0, pd.DataFrame(columns=["rule", "key", "size"]))
    keys = RecordKeys(records)  # part codes shared by blocking, comparing and estimating u
    pairs, oversized = candidate_pairs(records, DEFAULT_RULES, max_block_size, keys)
    if pairs.empty:
        return MatchResult(EMPTY.copy(), None, 0, oversized)
    n = len(records)
    # Too few records to learn from, or to measure how common a value is: shipped parameters
    # and no term-frequency adjustment.
    small = n < min_records_to_estimate
    if small:
        levels = compare_pairs(records, pairs, mapper, keys)
        params = Params.load(DEFAULT_PARAMS_PATH)
    else:
        levels, params = compare_and_estimate(
            records, lambda: compare_pairs(records, pairs, mapper, keys), keys, seed
        )
        levels = term_frequencies(records, levels, keys)
    links = links_from_levels(
        levels.assign(rules=pairs["rules"].to_numpy()), params, not small, match_probability
    )
    return MatchResult(links, params, len(pairs), oversized)


def links_from_levels(
    levels: pd.DataFrame, params: Params, tf_adjust: bool, match_probability: float
) -> pd.DataFrame:
    """Score compared pairs (`compare` output plus the pairs' ``rules``) and keep the links:
    pairs at or above `match_probability` that no guard vetoed, with their evidence columns.

    A chunk of pairs at a time (`pair_chunks`): a pair's score depends on that pair alone,
    and the weights of every field of every pair (a million-customer night has ~10M pairs)
    are only needed for the few that become links."""
    parts = [
        _accepted(levels.iloc[chunk], params, tf_adjust, match_probability)
        for chunk in pair_chunks(len(levels))
    ]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _accepted(
    levels: pd.DataFrame, params: Params, tf_adjust: bool, match_probability: float
) -> pd.DataFrame:
    scored = score(levels, params, tf_adjust=tf_adjust)
    keep = ((scored["match_probability"] >= match_probability) & ~scored["guarded"]).to_numpy()
    accepted = scored[keep]
    links = pd.DataFrame(
        {
            "left": accepted["left"].to_numpy(dtype=np.int64),
            "right": accepted["right"].to_numpy(dtype=np.int64),
            "weight": accepted["match_weight"].to_numpy(dtype=float),
            "probability": accepted["match_probability"].to_numpy(dtype=float),
            "rule": levels["rules"][keep].astype(str).to_numpy(),
        }
    )
    for name in COMPARISON_NAMES:
        links[f"{name}_level"] = levels[f"{name}_level"].to_numpy()[keep]
        links[f"{name}_weight"] = accepted[f"{name}_weight"].to_numpy(dtype=float)
    return links
