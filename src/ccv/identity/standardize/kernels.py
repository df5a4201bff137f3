"""Standardisers' plumbing: work per distinct value, in Arrow where exact, else in Python.

Every standardiser is written twice: a per-value Python function (the definition, used for
anything unusual) and an Arrow kernel that gives the same answers for printable-ASCII text,
which is nearly all CRM data. `_route` sends each distinct value to one of the two; a kernel
may also hand values back ("undecided") when a shape is rare and hard to vectorise exactly.
Python's text semantics (`str.split`, `casefold`, `\\s`, `\\w`, NFKC) differ from RE2/utf8proc
only outside printable ASCII, which is why that is the line between the two paths.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_TEXT = pa.large_string()
_NULL_TEXT = pa.scalar(None, type=_TEXT)

# Zero-width and invisible format characters that survive copy-paste (ZWSP, ZWNJ, ZWJ, word
# joiner, BOM, soft hyphen, LRM/RLM), plus control characters that are not whitespace.
_INVISIBLE = re.compile(
    "[\u200b-\u200d\u2060\ufeff\u00ad\u200e\u200f\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"
)


def _clean(text: str) -> str | None:
    if not (text.isascii() and text.isprintable()):  # the common case needs neither step
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    text = " ".join(text.split())  # every Unicode whitespace run -> one space; strips ends
    return text or None


def _to_text(value: object) -> str:
    """A raw cell as text; integral floats lose their ".0" (a phone read as 7911123456.0)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _arrow_text(s: pd.Series) -> pa.Array | None:
    """The values of an Arrow-backed text Series (pandas' default ``str``) as one array."""
    if not isinstance(s.dtype, pd.StringDtype | pd.ArrowDtype):
        return None
    if not hasattr(s.array, "__arrow_array__"):  # python-backed StringDtype
        return None
    arrow = s.array.__arrow_array__()
    if not (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
        return None
    arrow = arrow.cast(_TEXT)
    return arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow


def _distinct(s: pd.Series) -> tuple[pa.Array, pa.Array]:
    """Row codes (int32, null = missing) and the distinct non-missing values as text.

    Arrow-backed text is dictionary-encoded in Arrow (faster than `pd.factorize`); anything else
    (object columns of numbers, mixed types) is factorised by pandas and its distinct values
    turned into text by `_to_text`.
    """
    arrow = _arrow_text(s)
    if arrow is not None:
        encoded = pc.dictionary_encode(arrow)
        return encoded.indices, encoded.dictionary
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    texts = pa.array([_to_text(u) for u in np.asarray(uniques, dtype=object)], type=_TEXT)
    return pa.array(codes, type=pa.int32(), mask=codes < 0), texts


def _rows(codes: pa.Array, values: pa.Array, like: pd.Series) -> pd.Series:
    """Per-distinct ``values`` broadcast back to rows (null code -> NA) as a ``str`` Series."""
    rows = values.take(codes)
    return pd.Series(pd.array(rows, dtype="str"), index=like.index, name=like.name)


def _per_value(values: pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """``fn`` on each non-null value, in Python; null stays null."""
    return pa.array([None if v is None else fn(v) for v in values.to_pylist()], type=_TEXT)


def _per_distinct(values: pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """``fn`` once per distinct value of an array that repeats values (small Python remainder)."""
    encoded = pc.dictionary_encode(values)
    return _per_value(encoded.dictionary, fn).take(encoded.indices)


_Kernel = Callable[[pa.Array], tuple[list[pa.Array], pa.Array | None]]
"""Arrow kernel over printable-ASCII values (nulls allowed): outputs, and which values it leaves
undecided (True = use the Python function) or None when it decides them all."""


def _is_plain(values: pa.Array) -> np.ndarray:
    """Which values are printable ASCII (null counts as plain: every kernel keeps it null)."""
    plain = pc.and_(pc.string_is_ascii(values), pc.ascii_is_printable(values))
    return pc.fill_null(plain, True).to_numpy(zero_copy_only=False)


def _route(
    values: pa.Array,
    kernel: _Kernel,
    slow: Callable[[str], tuple[str | None, ...]],
    cleans_first: bool = True,
) -> list[pa.Array]:
    """Results aligned with ``values``: ``kernel`` where it can, else ``slow`` per value.

    ``cleans_first``: ``slow`` starts with `_clean` and then depends only on the cleaned text,
    so a value that is printable ASCII once cleaned (zero-width space, NBSP, fullwidth digits
    around ASCII) still goes to the kernel, as its cleaned text.
    """
    plain = _is_plain(values)
    kernel_idx, other_idx = np.flatnonzero(plain), np.flatnonzero(~plain)
    kernel_input = values if len(other_idx) == 0 else values.take(kernel_idx)
    if cleans_first and len(other_idx):
        cleaned = pa.array([_clean(v) for v in values.take(other_idx).to_pylist()], type=_TEXT)
        rescued = _is_plain(cleaned)
        kernel_input = pa.concat_arrays([kernel_input, cleaned.filter(pa.array(rescued))])
        kernel_idx = np.concatenate([kernel_idx, other_idx[rescued]])
        other_idx = other_idx[~rescued]
    outs, undecided = kernel(kernel_input)
    slow_idx = other_idx
    if undecided is not None:
        undecided_np = pc.fill_null(undecided, False).to_numpy(zero_copy_only=False)
        slow_idx = np.concatenate([other_idx, kernel_idx[undecided_np]])
    if len(slow_idx) == 0 and plain.all():  # kernel_idx is every position, in order
        return [o.cast(_TEXT) for o in outs]
    slow_results = [slow(v) for v in values.take(slow_idx).to_pylist()]
    position = np.empty(len(values), dtype=np.int64)
    position[kernel_idx] = np.arange(len(kernel_idx))
    position[slow_idx] = len(kernel_idx) + np.arange(len(slow_idx))
    merged = []
    for k, out in enumerate(outs):
        slow_out = pa.array([r[k] for r in slow_results], type=_TEXT)
        merged.append(pa.concat_arrays([out.cast(_TEXT), slow_out]).take(position))
    return merged


def _route1(
    values: pa.Array,
    kernel: Callable[[pa.Array], tuple[pa.Array, pa.Array | None]],
    slow: Callable[[str], str | None],
    cleans_first: bool = True,
) -> pa.Array:
    """`_route` for one output."""

    def kernel_list(v: pa.Array) -> tuple[list[pa.Array], pa.Array | None]:
        out, undecided = kernel(v)
        return [out], undecided

    return _route(values, kernel_list, lambda text: (slow(text),), cleans_first)[0]


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(values, pattern)


def _sub(values: pa.Array, pattern: str, replacement: str = "") -> pa.Array:
    """Regex replace, run only on the values that match (a replace costs far more than a match)."""
    hit = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    n_hit = pc.sum(hit).as_py() or 0
    if n_hit == 0:
        return values
    if n_hit == len(values):
        return pc.replace_substring_regex(values, pattern, replacement)
    replaced = pc.replace_substring_regex(values.filter(hit), pattern, replacement)
    return pc.replace_with_mask(values, hit, replaced)


def _strip_chars(values: pa.Array, chars: str) -> pa.Array:
    """Remove every one of ``chars`` (plain replaces: much faster than a regex class)."""
    for ch in chars:
        values = pc.replace_substring(values, ch, "")
    return values


def _halves(values: pa.Array, sep: str, reverse: bool = False) -> tuple[pa.Array, pa.Array]:
    """Split once at the first (last if ``reverse``) ``sep``: (before, after); after is null
    when there is no ``sep``. Null stays null."""
    lists = pc.split_pattern(values, sep, max_splits=1, reverse=reverse)
    offsets = lists.offsets.to_numpy()
    lengths = np.diff(offsets)
    items = lists.values if len(lists.values) else pa.array([""], type=values.type)
    starts = np.minimum(offsets[:-1], len(items) - 1)
    before = _null_where(pc.is_null(values), items.take(starts))
    after_idx = np.where(lengths == 2, offsets[:-1] + 1, 0)
    after = items.take(pa.array(after_idx, mask=lengths != 2))
    return before, after


def _null_where(mask: pa.Array, values: pa.Array) -> pa.Array:
    """``values`` with null where ``mask`` is true (a null mask keeps the value)."""
    return pc.if_else(pc.fill_null(mask, False), pa.scalar(None, type=values.type), values)


def _concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of text arrays and literals (null if any part is null)."""
    items = [pa.scalar(p, type=_TEXT) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*items, pa.scalar("", type=_TEXT))


def _empty_to_null(values: pa.Array) -> pa.Array:
    return _null_where(pc.equal(pc.utf8_length(values), 0), values)
