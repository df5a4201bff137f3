"""Blocking: which record pairs are worth comparing at all.

Why: comparing every pair of a million records is 5·10^11 comparisons. A *blocking rule* says
"only compare records that agree exactly on this key"; the union of several rules gives recall
(a pair missed by one rule is usually caught by another), and each rule stays cheap because its
key is specific. Two things keep the union bounded:

* every rule's key is a conjunction of specific parts (e.g. surname sound *and* birth date),
  so a typical block holds a handful of records;
* a block larger than ``max_block_size`` is never exploded into pairs: it is reported (rule,
  key value, size) in ``oversized`` instead. Such blocks are almost always junk or shared values
  ("info@" local parts, a call-centre phone, the most common name at one postcode) whose pairs
  another, more specific rule catches anyway. ``estimate_pairs`` shows the cost of a rule set
  before any pair is generated.

A rule is data: a name and a tuple of *key parts*. A key part is either a column name
(``"std_phone"``) or a small named expression over columns, ``"fn(column[, column])"``;
arguments may be expressions themselves (``"digits(email_local(std_email))"``):

==============================  ===============================================================
expression                      value (NA when an input is NA)
==============================  ===============================================================
``email_local(c)``              local part of an e-mail (before "@"); NA for masked ("rob***")
``email_domain(c)``             domain of an e-mail
``local_alnum(c)``              letters and digits of the local part (masked ones too):
                                ``j.smith`` and ``jsmith`` agree
``unmasked(c)``                 the value, NA when it contains "*" (a masked e-mail is no
                                identifier: ``j***@gmail.com`` is thousands of people)
``email_initial(c)``            first character of the local part, "@", the domain:
                                ``r***@x.com`` and ``robert.smith@x.com`` both give ``r@x.com``
                                (masked-e-mail compatible; masks show 1-3 characters)
``prefix3(c)``                  first 3 characters
``first(c)``                    first character
``year(c)``                     year of a date
``iso(c)``                      a date as "YYYY-MM-DD" text
``date_unordered(c)``           year, and day and month as an unordered pair: 1990-03-04 and
                                1990-04-03 give the same key (swapped day/month)
``outward(c)``                  UK postcode outward code ("SW1A 1AA" -> "SW1A"); other codes
                                are kept whole
``last_digits(c)``              last 8 digits of a phone number
``digits(c)``                   only the digits ("" when there are none)
``month_day(c)``                month and day of a date, as 100·month + day
``nickname(c)``                 the nickname group of a folded name ("tom" -> "thomas"), for a
                                first name standing in another column (swapped names)
``unordered(a, b)``             the two values as an unordered pair: ("JN", "SM0") and
                                ("SM0", "JN") give one key (swapped first/last names)
==============================  ===============================================================

Pairs are generated with numpy, not SQL: records are sorted by key code, and for every distinct
block size ``s`` all blocks of that size are expanded at once with ``np.triu_indices(s, 1)``
(one Python iteration per distinct block size, never per block, pair or record). Measured on
1M synthetic records, an earlier 17-rule set (9.3M pairs before dedup), same key codes, 2 cores:
numpy 3.1 s, DuckDB self-join (window count for the cap + equi-join) 5.6 s; numpy also needs
no copy of the frame into a database.

>>> recs = pd.DataFrame({"record_idx": [10, 11, 12], "std_phone": ["+44791", "+44791", None]})
>>> pairs, oversized = candidate_pairs(recs, [BlockingRule("phone", ("std_phone",))])
>>> pairs[["left", "right"]].values.tolist(), pairs["rules"].astype(str).tolist()
([[10, 11]], ['phone'])
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.arrays import unique_sorted
from ccv.identity.standardize.names import nickname_key
from ccv.identity.threads import parallel_map

__all__ = [
    "DEFAULT_MAX_BLOCK_SIZE",
    "DEFAULT_RULES",
    "KEY_FUNCTIONS",
    "BlockingRule",
    "RecordKeys",
    "block_keys",
    "candidate_pairs",
    "estimate_pairs",
    "key_values",
]

DEFAULT_MAX_BLOCK_SIZE = 50
"""Blocks with more records are reported, not exploded: 50 records = 1,225 pairs, and a
block that size on these specific keys is a shared or junk value (a default birth date such
as 2008-10-14 on 2 % of records, a call-centre phone), never one customer. At 1M records a
cap of 300 generated 14.6M pairs instead of 6M, most of them from such values."""


@dataclass(frozen=True)
class BlockingRule:
    """Records are candidates when every key part is non-null and equal on both.

    ``columns`` holds column names or key expressions (see the module doc), e.g.
    ``BlockingRule("dob_surname", ("std_last_phonetic", "date_unordered(std_birth_date)"))``.
    """

    name: str
    columns: tuple[str, ...]
    max_block_size: int | None = None
    """Cap for this rule; None = the ``max_block_size`` passed to `candidate_pairs`."""

    def cap(self, default: float | None) -> float:
        cap = self.max_block_size if self.max_block_size is not None else default
        return np.inf if cap is None else cap

    def __post_init__(self) -> None:
        if not self.columns:
            raise ValueError(f"blocking rule {self.name!r} has no key parts")
        for part in self.columns:
            _parse(part)  # fail at definition time, not mid-run


# --------------------------------------------------------------------------------------------
# key expressions


def arrow_text(s: pd.Series) -> pa.Array:
    """A text column as an Arrow string array (empty strings become null)."""
    arr = pa.array(s.astype("str").array if s.dtype != "str" else s.array, type=pa.large_string())
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.large_string()), arr)


def _arrow_date(s: pd.Series) -> pa.Array:
    """A date column (Arrow date32, datetime64 or datetime.date objects) as Arrow date32."""
    if isinstance(s.dtype, pd.ArrowDtype):
        arr = pa.array(s.array)
        return arr if arr.type == pa.date32() else pc.cast(arr, pa.date32())
    return pa.array(pd.to_datetime(s, errors="coerce").dt.date, type=pa.date32())


def split_email(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(local part, domain) of e-mails, split at the first "@"; NA without an "@".

    One regular-expression pass (3–4× cheaper than splitting into list arrays).
    """
    parts = pc.extract_regex(arr, r"(?s)^(?P<local>[^@]*)@(?P<domain>.*)$")
    return pc.struct_field(parts, "local"), pc.struct_field(parts, "domain")


def _email_local(s: pd.Series) -> pa.Array:
    arr = arrow_text(s)
    local = split_email(arr)[0]
    masked = pc.match_substring(local, "*")
    return pc.if_else(masked, pa.scalar(None, pa.large_string()), local)


def _email_domain(s: pd.Series) -> pa.Array:
    return split_email(arrow_text(s))[1]


def _local_alnum(s: pd.Series) -> pa.Array:
    return pc.replace_substring_regex(split_email(arrow_text(s))[0], r"[^a-z0-9]", "")


def _email_initial(s: pd.Series) -> pa.Array:
    local, domain = split_email(arrow_text(s))
    prefix = pc.utf8_slice_codeunits(local, 0, 1)
    prefix = pc.if_else(pc.equal(prefix, "*"), pa.scalar(None, pa.large_string()), prefix)
    return pc.binary_join_element_wise(prefix, domain, pa.scalar("@", pa.large_string()))


def _unmasked(s: pd.Series) -> pa.Array:
    arr = arrow_text(s)
    return pc.if_else(pc.match_substring(arr, "*"), pa.scalar(None, pa.large_string()), arr)


def _prefix(n: int) -> Callable[[pd.Series], pa.Array]:
    return lambda s: pc.utf8_slice_codeunits(arrow_text(s), 0, n)


def _nickname(s: pd.Series) -> pa.Array:
    return arrow_text(nickname_key(s))


def _year(s: pd.Series) -> pa.Array:
    return pc.year(_arrow_date(s))


def _date_unordered(s: pd.Series) -> pa.Array:
    d = _arrow_date(s)
    year, month, day = pc.year(d), pc.month(d), pc.day(d)
    low, high = pc.min_element_wise(month, day), pc.max_element_wise(month, day)
    return pc.add(pc.multiply(pc.add(pc.multiply(year, 100), low), 100), high)


def _iso(s: pd.Series) -> pa.Array:
    return pc.cast(_arrow_date(s), pa.large_string())


def _outward(s: pd.Series) -> pa.Array:
    return pc.replace_substring_regex(arrow_text(s), r" [0-9][A-Z]{2}$", "")


def _last_digits(s: pd.Series) -> pa.Array:
    digits = pc.replace_substring_regex(arrow_text(s), r"\D", "")
    return pc.utf8_slice_codeunits(digits, -8, 2**31 - 1)


def _digits(s: pd.Series) -> pa.Array:
    return pc.replace_substring_regex(arrow_text(s), r"\D", "")


def _month_day(s: pd.Series) -> pa.Array:
    d = _arrow_date(s)
    return pc.add(pc.multiply(pc.month(d), 100), pc.day(d))


def _unordered(a: pd.Series, b: pd.Series) -> pa.Array:
    x, y = arrow_text(a), arrow_text(b)
    lo = pc.if_else(pc.less_equal(x, y), x, y)
    hi = pc.if_else(pc.less_equal(x, y), y, x)
    return pc.binary_join_element_wise(lo, hi, pa.scalar("|", pa.large_string()))


KEY_FUNCTIONS: dict[str, Callable[..., pa.Array]] = {
    "email_local": _email_local,
    "email_domain": _email_domain,
    "local_alnum": _local_alnum,
    "unmasked": _unmasked,
    "email_initial": _email_initial,
    "prefix3": _prefix(3),
    "first": _prefix(1),
    "nickname": _nickname,
    "year": _year,
    "date_unordered": _date_unordered,
    "outward": _outward,
    "iso": _iso,
    "last_digits": _last_digits,
    "digits": _digits,
    "month_day": _month_day,
    "unordered": _unordered,
}
"""Named key expressions usable in `BlockingRule` columns; each maps Series to an Arrow array."""

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")


def _split_args(text: str) -> list[str]:
    """Split ``"a, fn(b, c)"`` at the commas outside parentheses."""
    args, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    args.append(text[start:].strip())
    return args


def _parse(part: str) -> tuple[str | None, tuple[str, ...]]:
    """``"fn(a, g(b))"`` -> ("fn", ("a", "g(b)")); a bare column -> (None, (column,)).

    Arguments may themselves be expressions (``digits(email_local(std_email))``); every
    nested expression is validated here too.
    """
    match = _CALL.match(part)
    if match is None:
        if not re.fullmatch(r"\s*\w+\s*", part):
            raise ValueError(f"bad key part {part!r}: a column or fn(column, ...)")
        return None, (part.strip(),)
    fn, args = match[1], tuple(_split_args(match[2]))
    if fn not in KEY_FUNCTIONS:
        raise ValueError(f"unknown key function {fn!r}; known: {sorted(KEY_FUNCTIONS)}")
    for arg in args:
        _parse(arg)
    return fn, args


def _columns(part: str) -> list[str]:
    """The columns a key part reads, nested expressions included."""
    fn, args = _parse(part)
    return list(args) if fn is None else [c for a in args for c in _columns(a)]


DEFAULT_RULES: tuple[BlockingRule, ...] = (
    # The three identifiers: near-certain on their own, and cheap (blocks of 1-3 records).
    # Shared household e-mails land here too; the comparisons tell those people apart.
    BlockingRule("email_key", ("unmasked(std_email_key)",)),
    BlockingRule("phone", ("std_phone",)),
    BlockingRule("loyalty_id", ("std_loyalty_id",)),
    # Same surname sound and birth date (day/month order ignored): first-name typos, nicknames
    # and OCR errors, a changed e-mail and a new phone all survive.
    BlockingRule("surname_dob", ("std_last_phonetic", "date_unordered(std_birth_date)")),
    # Same first name (nickname group) and birth date: a changed surname (marriage), a
    # surname typo that changes its sound, or no surname.
    BlockingRule("firstkey_dob", ("std_first_name_key", "date_unordered(std_birth_date)")),
    # Same name and area, no birth date needed: sources that do not collect one.
    BlockingRule(
        "name_outward",
        ("std_first_name_key", "std_last_phonetic", "outward(std_postcode)"),
    ),
    # The same full name and nothing else: rare names link on that alone (the term-frequency
    # adjustment of scoring makes "featherstonehaugh" count, "smith" not). A name shared by
    # more than 10 records would never link on the name alone, so its block is not expanded.
    BlockingRule("full_name", ("std_first_name_key", "std_last_name"), max_block_size=10),
    # Same name sound and city: records without a postcode.
    BlockingRule(
        "name_city", ("std_first_phonetic", "std_last_phonetic", "std_city"), max_block_size=20
    ),
    # One name missing or mangled, plus the full postcode (a street's worth of households).
    BlockingRule("firstkey_postcode", ("std_first_name_key", "std_postcode")),
    BlockingRule("surname_postcode", ("std_last_phonetic", "std_postcode")),
    # Birth date and postcode: the name is mangled beyond its sound (swapped, OCR, typo in
    # the first letters). A household shares the address but rarely the birth date.
    # (Dropped after measuring on 1M benchmark records: initials + birth date, 311k pairs for
    # 213 true pairs no other rule found; birth date + city, 704k pairs for 699.)
    BlockingRule("dob_postcode", ("date_unordered(std_birth_date)", "std_postcode")),
    # Same local part anywhere ("rob.smith" at gmail and at outlook): people reuse handles.
    # Generic locals ("info", "john") make big blocks, which the cap drops.
    BlockingRule("email_local", ("email_local(std_email_key)",)),
    # Masked e-mails ("r***@example.com") and local-part typos, made specific by the name
    # sound and first initial (the initial alone with the domain is j@gmail.com: too broad).
    BlockingRule(
        "email_initial_name",
        ("email_initial(std_email)", "std_last_phonetic", "first(std_first_name)"),
        max_block_size=10,
    ),
    # Swapped first/last names ("Smith John"): the name sounds as an unordered pair, plus the
    # birth year (or the outward code when a source has no birth date).
    BlockingRule(
        "swapped_names_year",
        ("unordered(std_first_phonetic, std_last_phonetic)", "year(std_birth_date)"),
        max_block_size=20,
    ),
    BlockingRule(
        "swapped_names_outward",
        ("unordered(std_first_phonetic, std_last_phonetic)", "outward(std_postcode)"),
    ),
)
"""Rules used when none are given; each comment above says which errors it survives."""


def key_values(records: pd.DataFrame, part: str) -> pd.Series:
    """The values of one key part (a column or a key expression) for every record."""
    return _part_values(records, part)


def _part_values(records: pd.DataFrame, part: str) -> pd.Series:
    missing = [c for c in _columns(part) if c not in records.columns]
    if missing:
        raise KeyError(f"key {part!r} needs missing column(s) {missing}")
    fn, args = _parse(part)
    if fn is None:
        return records[args[0]]
    values = KEY_FUNCTIONS[fn](*(_part_values(records, a) for a in args))
    return pd.Series(pd.array(values, dtype=pd.ArrowDtype(values.type)), index=records.index)


def factorize(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 codes, -1 for missing; distinct values), Arrow dictionary encoding when possible."""
    array = values.array
    if hasattr(array, "__arrow_array__"):
        arrow = pa.array(array)
        if isinstance(arrow, pa.ChunkedArray):
            arrow = arrow.combine_chunks()
        encoded = pc.dictionary_encode(arrow)
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return codes.astype(np.int64), encoded.dictionary
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _as_series(uniques: pa.Array | np.ndarray) -> pd.Series:
    """Distinct values from `factorize` as a Series a key function takes."""
    if isinstance(uniques, pa.Array):
        return pd.Series(pd.arrays.ArrowExtensionArray(uniques))
    return pd.Series(uniques, dtype=object)


def _take(uniques: pa.Array | np.ndarray, codes: np.ndarray) -> pa.Array | np.ndarray:
    """``uniques[codes]`` with code -1 giving a missing value."""
    if isinstance(uniques, pa.Array):
        return uniques.take(pa.array(codes.astype(np.int64), mask=codes < 0))
    out = np.empty(len(codes), dtype=object)
    out[codes >= 0] = uniques[codes[codes >= 0]]
    out[codes < 0] = None
    return out


class RecordKeys:
    """The codes of key parts (columns or key expressions) over one records frame, each
    computed once and shared by every step that needs them.

    Why: blocking, comparing the candidate pairs, estimating u from random pairs and the term
    frequencies all encode the same parts (``std_first_name``, ``email_local(std_email)``, …);
    at a million records one encoding costs 0.1–0.5 s and each used to be redone in every step
    and every comparison. Codes are int32 (-1 = missing; equal codes = equal values), distinct
    values stay as `factorize` returns them (an Arrow array for Arrow-backed columns), so the
    cache holds ~4 bytes per record and part plus the distinct values. ``codes("a", "b")``
    encodes two parts in one shared code space (first name against the other's last name).
    """

    def __init__(self, records: pd.DataFrame) -> None:
        self.records = records
        self._codes: dict[tuple[str, ...], tuple[np.ndarray, pa.Array | np.ndarray]] = {}
        self._index: pd.Index | None = None
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def codes(self, *parts: str) -> tuple[np.ndarray, pa.Array | np.ndarray]:
        """(codes per record — per record and part, parts one after the other, for several
        parts — and the distinct values).

        Thread-safe: steps running side by side (`ccv.identity.threads`) that ask for one part
        wait for a single encoding of it instead of each doing it.
        """
        found = self._codes.get(parts)
        if found is not None:
            return found
        with self._locks_lock:
            lock = self._locks.setdefault(parts, threading.Lock())
        with lock:
            if parts not in self._codes:
                if len(parts) == 1:
                    codes, uniques = self._encode(parts[0])
                else:
                    values = [_part_values(self.records, part) for part in parts]
                    codes, uniques = factorize(pd.concat(values, ignore_index=True))
                self._codes[parts] = codes.astype(np.int32, copy=False), uniques
        return self._codes[parts]

    def _encode(self, part: str) -> tuple[np.ndarray, pa.Array | np.ndarray]:
        """Codes of a column, or of a key expression evaluated once per distinct combination of
        its arguments' values instead of once per record.

        Key functions are elementwise (a record's key depends on its own values only, and a
        missing input gives a missing key), so evaluating them on the distinct inputs and
        mapping back through the inputs' codes gives every record the key it would get row by
        row; a million records hold a few hundred thousand distinct e-mails, tens of
        thousands of birth dates and far fewer domains.
        """
        missing = [c for c in _columns(part) if c not in self.records.columns]
        if missing:
            raise KeyError(f"key {part!r} needs missing column(s) {missing}")
        fn, args = _parse(part)
        if fn is None:
            return factorize(self.records[args[0]])
        encoded = [self.codes(arg) for arg in args]
        if len(encoded) == 1:
            (combo, uniques), n_combos = encoded[0], len(encoded[0][1])
            inputs = [_as_series(uniques)]
        else:  # distinct combinations of the arguments (a missing one included as such)
            combo = np.zeros(len(self.records), dtype=np.int64)
            for codes, uniques in encoded:
                combo = combo * (len(uniques) + 1) + (codes.astype(np.int64) + 1)
            combo, _ = pd.factorize(combo)
            n_combos = int(combo.max(initial=-1)) + 1
            first = np.empty(n_combos, dtype=np.int64)  # a record holding each combination
            first[combo[::-1]] = np.arange(len(combo) - 1, -1, -1)
            inputs = [_as_series(_take(uniques, codes[first])) for codes, uniques in encoded]
        values = KEY_FUNCTIONS[fn](*inputs)
        derived = pd.Series(pd.array(values, dtype=pd.ArrowDtype(values.type)))
        key_codes, key_uniques = factorize(derived)
        # code -1 (a missing input) takes the appended -1: a missing key
        return np.append(key_codes, -1)[combo], key_uniques

    def rows(self, record_idx: np.ndarray) -> np.ndarray:
        """Row positions in `records` of ``record_idx`` values (KeyError for unknown ones)."""
        with self._locks_lock:  # pandas builds the index's hash table on first use
            if self._index is None:
                self._index = pd.Index(self.records["record_idx"].to_numpy(dtype=np.int64))
            positions = self._index.get_indexer(record_idx)
        if (positions < 0).any():
            raise KeyError("pairs name record_idx values that are not in records")
        return positions

    @staticmethod
    def of(records: pd.DataFrame, keys: RecordKeys | None) -> RecordKeys:
        """`keys` if given (it must be over `records` itself), else a new cache."""
        if keys is None:
            return RecordKeys(records)
        if keys.records is not records:
            raise ValueError("RecordKeys were built over another records frame")
        return keys


def block_keys(
    records: pd.DataFrame, rule: BlockingRule, keys: RecordKeys | None = None
) -> tuple[np.ndarray, _DisplayKeys]:
    """Integer key code per record (-1 = some part null) and the key's display values.

    Codes are dense (0..k-1), so records in one block share a code; ``display[code]`` joins
    the parts' values with " | " (shown in ``oversized`` and ``estimate_pairs``). ``keys``
    shares part codes across rules and steps.
    """
    keys = RecordKeys.of(records, keys)
    n = len(records)
    codes = np.zeros(n, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    parts = []
    for part in rule.columns:
        part_codes, uniques = keys.codes(part)
        valid &= part_codes >= 0
        if len(rule.columns) == 1:
            codes = part_codes
        else:  # mixed radix, re-densified so the product never overflows
            codes = codes * (len(uniques) + 1) + part_codes
            codes = pd.factorize(codes)[0] if codes.max(initial=0) > 2**40 else codes
        parts.append((part_codes, uniques))
    codes_dense = pd.factorize(codes[valid])[0] if len(rule.columns) > 1 else None
    out = np.full(n, -1, dtype=np.int64)
    out[valid] = codes_dense if codes_dense is not None else codes[valid]
    return out, _DisplayKeys(parts, out)


class _DisplayKeys:
    """Lazily renders the key value of a block code (only a few are ever shown)."""

    def __init__(self, parts: list[tuple[np.ndarray, object]], codes: np.ndarray) -> None:
        self._parts = parts
        self._codes = codes
        self._first_row: np.ndarray | None = None

    def __getitem__(self, code: int) -> str:
        if self._first_row is None:  # first record of every block, in one pass
            keyed = np.flatnonzero(self._codes >= 0)
            self._first_row = np.full(int(self._codes.max(initial=-1)) + 1, -1, dtype=np.int64)
            self._first_row[self._codes[keyed][::-1]] = keyed[::-1]
        row = int(self._first_row[code])
        return " | ".join(str(uniques[int(pc_[row])]) for pc_, uniques in self._parts)


def _block_sizes(codes: np.ndarray) -> np.ndarray:
    return np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, np.int64)


def estimate_pairs(
    records: pd.DataFrame,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    max_block_size: int | None = DEFAULT_MAX_BLOCK_SIZE,
) -> pd.DataFrame:
    """Pairs each rule would generate, from block sizes alone (n·(n−1)/2 per block).

    Why: run this before `candidate_pairs` when trying a new rule; a rule on a common value
    shows up here as billions of pairs instead of as an out-of-memory kill. Columns: ``rule``,
    ``blocks`` (blocks of 2+ records), ``pairs`` (all of them, no cap), ``pairs_capped`` (in
    blocks of at most the rule's cap, else ``max_block_size``: exactly what `candidate_pairs`
    generates for the rule before deduplication across rules), ``oversized_blocks``,
    ``largest_block``, ``largest_key``.
    """
    rows = []
    cache = RecordKeys(records)
    for rule in rules:
        cap = rule.cap(max_block_size)
        codes, keys = block_keys(records, rule, cache)
        sizes = _block_sizes(codes)
        multi = sizes >= 2
        pairs_per_block = sizes * (sizes - 1) // 2
        largest = int(sizes.argmax()) if len(sizes) else -1
        rows.append(
            {
                "rule": rule.name,
                "blocks": int(multi.sum()),
                "pairs": int(pairs_per_block.sum()),
                "pairs_capped": int(pairs_per_block[sizes <= cap].sum()),
                "oversized_blocks": int((sizes > cap).sum()),
                "largest_block": int(sizes[largest]) if largest >= 0 else 0,
                "largest_key": keys[largest] if largest >= 0 and sizes[largest] >= 2 else None,
            }
        )
    return pd.DataFrame(rows)


def pairs_for_rule(codes: np.ndarray, max_block_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j), i < j, of every pair of records sharing a code in a block ≤ the cap.

    Only records in blocks of 2 to `max_block_size` records are sorted: under a specific key
    most records are alone in their block.
    """
    keyed = np.flatnonzero(codes >= 0)
    sizes = np.bincount(codes[keyed])[codes[keyed]]
    keyed = keyed[(sizes >= 2) & (sizes <= max_block_size)]
    order = keyed[np.argsort(codes[keyed])]
    sorted_codes = codes[order]
    boundaries = np.flatnonzero(np.diff(sorted_codes)) + 1
    starts = np.concatenate(([0], boundaries))
    sizes = np.diff(np.concatenate((starts, [len(order)])))
    lefts, rights = [], []
    for size in unique_sorted(sizes):
        if size < 2 or size > max_block_size:
            continue
        block_starts = starts[sizes == size]
        i, j = np.triu_indices(size, 1)
        lefts.append(order[(block_starts[:, None] + i[None, :]).ravel()])
        rights.append(order[(block_starts[:, None] + j[None, :]).ravel()])
    if not lefts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    left, right = np.concatenate(lefts), np.concatenate(rights)
    return np.minimum(left, right), np.maximum(left, right)


def or_by_key(keys: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pair keys (sorted) with the bitwise or of their rule masks: one row per pair
    however many rules found it."""
    if not len(keys):
        return keys, masks
    order = np.argsort(keys, kind="stable")
    keys, masks = keys[order], masks[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    return keys[starts], np.bitwise_or.reduceat(masks, starts)


def rule_names(masks: np.ndarray, rules: Sequence[BlockingRule]) -> pd.Categorical:
    """Rule bit masks as names: the rules that found a pair, joined with "+" in rule order
    ("email_key+surname_dob")."""
    codes, values = pd.factorize(masks, sort=True)
    names = ["+".join(r.name for b, r in enumerate(rules) if int(m) >> b & 1) for m in values]
    return pd.Categorical.from_codes(codes, categories=names)


def candidate_pairs(
    records: pd.DataFrame,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    keys: RecordKeys | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Candidate pairs of all rules, deduplicated, and the blocks too large to expand.

    Returns ``(pairs, oversized)``:

    * ``pairs``: ``left``, ``right`` (``record_idx`` values, left < right, each pair once)
      and ``rules`` (categorical: the names of the rules that found the pair joined with "+",
      in rule order, e.g. ``"email_key+surname_dob"``), sorted by (left, right);
    * ``oversized``: ``rule``, ``key`` (display value), ``size`` for each block of more than
      ``max_block_size`` records (or the rule's own cap); none of its pairs was generated by
      that rule.

    Memory is about 17 bytes per generated pair (before dedup) plus the records' key codes.
    Pass ``keys`` (a `RecordKeys` over ``records``) when the pairs are compared next, so the
    comparisons reuse the part codes blocking computed.
    """
    if len(rules) > 62:
        raise ValueError("at most 62 blocking rules")
    if "record_idx" not in records.columns:
        raise KeyError("records need a record_idx column")
    record_idx = records["record_idx"].to_numpy(dtype=np.int64)
    n = len(records)
    pair_keys, masks, oversized = [], [], []
    cache = RecordKeys.of(records, keys)

    def rule_pairs(rule: BlockingRule) -> tuple[np.ndarray, list[dict]]:
        """The rule's pair keys (left position * n + right position) and oversized blocks."""
        cap = rule.cap(max_block_size)
        codes, display = block_keys(records, rule, cache)
        sizes = _block_sizes(codes)
        too_big = [
            {"rule": rule.name, "key": display[int(code)], "size": int(sizes[code])}
            for code in np.flatnonzero(sizes > cap)
        ]
        left, right = pairs_for_rule(codes, cap)
        return left * n + right, too_big

    for bit, (rule_keys, too_big) in enumerate(parallel_map(rule_pairs, rules)):
        oversized.extend(too_big)
        pair_keys.append(rule_keys)
        masks.append(np.full(len(rule_keys), 1 << bit, dtype=np.int64))
    keys_all = np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64)
    masks_all = np.concatenate(masks) if masks else np.zeros(0, np.int64)
    del pair_keys, masks
    unique_keys, rule_masks = or_by_key(keys_all, masks_all)
    del keys_all, masks_all
    left_pos, right_pos = np.divmod(unique_keys, n) if n else (unique_keys, unique_keys)
    left_idx, right_idx = record_idx[left_pos], record_idx[right_pos]
    swap = left_idx > right_idx  # positions are ordered; record_idx need not follow them
    left_out = np.where(swap, right_idx, left_idx)
    right_out = np.where(swap, left_idx, right_idx)
    pairs = pd.DataFrame(
        {"left": left_out, "right": right_out, "rules": rule_names(rule_masks, rules)}
    )
    if swap.any():
        pairs = pairs.sort_values(["left", "right"], ignore_index=True)
    oversized_frame = pd.DataFrame(oversized, columns=["rule", "key", "size"])
    return pairs, oversized_frame.astype({"size": "int64"})
