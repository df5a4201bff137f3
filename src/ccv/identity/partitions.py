"""Candidate-pair comparison split into independent partitions, run through a mapper.

Why: comparing candidate pairs (rapidfuzz string measures, level by level) is the heaviest step of
probabilistic matching, and it is embarrassingly parallel: a pair's comparison levels depend only
on its two records. Pairs are split by a hash of the block they were found in — the first
blocking rule (in rule order) that produced the pair and that rule's key for it — so all pairs of
one block land in one partition, and a partition carries only its pairs and the `std_*` columns of
the records they name. Any partition can therefore run in another process or on another machine
(the Dask task runner of `flows/nightly.py`, see docs/scaling.md), and the partitions' results
put back in pair order are exactly what one `compare` call over all pairs gives.

What stays central, in the caller: blocking (cheap, needs every record), the term frequencies
(`term_frequencies`: a value's frequency among *all* records, which no partition sees),
estimating m and u (EM needs every pair's levels) and scoring (a few vectorised passes over
small integer arrays).

A `Mapper` says how the partitions run: `map(fn, items)` returns `[fn(item) for item in items]`
in item order, in this process (`LOCAL`) or elsewhere; `fn` is a module-level function so that
it pickles by reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ccv.identity.arrays import unique_sorted
from ccv.identity.blocking import DEFAULT_RULES, RecordKeys, block_keys
from ccv.identity.comparisons import DEFAULT_COMPARISONS, Comparison, compare
from ccv.identity.term_counts import FrozenCounts, tf_comparisons

MapFn = Callable[[Callable[[Any], Any], list[Any]], list[Any]]


def in_process(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """`fn` over `items`, one after the other, in this process."""
    return [fn(item) for item in items]


@dataclass(frozen=True)
class Mapper:
    """How partitioned work runs: `map(fn, items)` over `partitions` partitions.

    One partition (the default) means no splitting at all: `compare` over every pair, as before
    partitioning existed.
    """

    partitions: int = 1
    map: MapFn = in_process

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")


LOCAL = Mapper()
"""Everything in this process, unsplit."""


@dataclass(frozen=True)
class PairPartition:
    """One independent piece of comparison work: pairs and the records they name."""

    number: int
    records: pd.DataFrame  # record_idx + std_* columns of the records named by `pairs`
    pairs: pd.DataFrame  # left, right (record_idx values)


def compare_partition(partition: PairPartition) -> pd.DataFrame:
    """Comparison levels of one partition's pairs."""
    return compare(partition.records, partition.pairs, DEFAULT_COMPARISONS)


def partition_of_pairs(
    records: pd.DataFrame, pairs: pd.DataFrame, partitions: int, keys: RecordKeys | None = None
) -> np.ndarray:
    """Partition number (0 ≤ p < `partitions`) of every pair of `candidate_pairs(records, …)`.

    The hash of (the first rule in `pairs["rules"]`, that rule's block key code of the pair), so
    every pair of a block goes to the same partition. Key codes are re-derived from `records`
    for just the rules that come first for some pair (`block_keys`, one pass per such rule).
    Pairs that do not name `DEFAULT_RULES` (no `rules` column) are split by a hash of the pair.
    """
    bit_of = {rule.name: bit for bit, rule in enumerate(DEFAULT_RULES)}
    if "rules" not in pairs:
        key = pairs["left"].to_numpy(dtype=np.int64) * (1 << 32) + pairs["right"].to_numpy()
        return (pd.util.hash_array(key) % np.uint64(partitions)).astype(np.int64)
    categories = pairs["rules"].cat.categories
    first_bit = np.array([bit_of[str(name).split("+")[0]] for name in categories], dtype=np.int64)
    rule_bit = first_bit[pairs["rules"].cat.codes.to_numpy()]
    keys = RecordKeys.of(records, keys)
    left = keys.rows(pairs["left"].to_numpy(dtype=np.int64))
    block = np.empty(len(pairs), dtype=np.int64)
    for bit in unique_sorted(rule_bit):
        codes, _ = block_keys(records, DEFAULT_RULES[bit], keys)
        chosen = rule_bit == bit
        block[chosen] = codes[left[chosen]]
    hashed = pd.util.hash_array(block * 64 + rule_bit)  # < 62 rules: (rule, block) is unique
    return (hashed % np.uint64(partitions)).astype(np.int64)


def split_pairs(
    records: pd.DataFrame, pairs: pd.DataFrame, partitions: int, keys: RecordKeys | None = None
) -> tuple[list[PairPartition], list[np.ndarray]]:
    """The non-empty partitions of `pairs`, and for each the rows of `pairs` it holds."""
    keys = RecordKeys.of(records, keys)
    part = partition_of_pairs(records, pairs, partitions, keys)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    left = keys.rows(pairs["left"].to_numpy(dtype=np.int64))
    right = keys.rows(pairs["right"].to_numpy(dtype=np.int64))
    columns = ["record_idx", *(c for c in records.columns if c.startswith("std_"))]
    items, rows = [], []
    for number in range(partitions):
        chosen = order[bounds[number] : bounds[number + 1]]
        if not len(chosen):
            continue
        named = unique_sorted(np.concatenate([left[chosen], right[chosen]]))
        items.append(
            PairPartition(
                number,
                records[columns].iloc[named].reset_index(drop=True),
                pairs[["left", "right"]].iloc[chosen].reset_index(drop=True),
            )
        )
        rows.append(chosen)
    return items, rows


def term_frequencies(
    records: pd.DataFrame,
    levels: pd.DataFrame,
    keys: RecordKeys | None = None,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    counts: FrozenCounts | None = None,
) -> pd.DataFrame:
    """`levels` (`compare` output) with a float32 ``<name>_tf`` column for every comparison with
    a ``tf_column``: the relative frequency of the pair's value among all of `records` that
    have one — or, given `counts` frozen with the parameters (`term_counts`), among the
    records they were counted on — set where the level is the exact one (NaN elsewhere)."""
    keys = RecordKeys.of(records, keys)
    left = keys.rows(levels["left"].to_numpy(dtype=np.int64))
    for comparison in tf_comparisons(comparisons):
        exact_level = comparison.exact_level()
        codes, uniques = keys.codes(comparison.tf_column)
        keyed = codes >= 0
        if counts is not None:
            freq = counts.frequencies(comparison.name, uniques)
        else:
            freq = np.bincount(codes[keyed], minlength=1) / max(int(keyed.sum()), 1)
        left_codes = codes[left]
        tf = np.full(len(levels), np.nan, dtype=np.float32)
        at_exact = (levels[f"{comparison.name}_level"].to_numpy() == exact_level) & (
            left_codes >= 0
        )
        tf[at_exact] = freq[left_codes[at_exact]]
        levels[f"{comparison.name}_tf"] = tf
    return levels


def compare_pairs(
    records: pd.DataFrame,
    pairs: pd.DataFrame,
    mapper: Mapper = LOCAL,
    keys: RecordKeys | None = None,
) -> pd.DataFrame:
    """`compare(records, pairs)`, with the pairs split into `mapper.partitions` partitions.

    The result is the same frame, row for row, whatever the mapper and the partition count.
    ``keys`` (the records' `RecordKeys`) serves the central steps; a partition encodes its
    own records where it runs.
    """
    if mapper.partitions == 1 or pairs.empty:
        return compare(records, pairs, DEFAULT_COMPARISONS, keys)
    items, rows = split_pairs(records, pairs, mapper.partitions, keys)
    results = mapper.map(compare_partition, items)
    levels = pd.concat(results, ignore_index=True)
    back = np.empty(len(pairs), dtype=np.int64)
    back[np.concatenate(rows)] = np.arange(len(pairs))
    return levels.take(back).reset_index(drop=True)
