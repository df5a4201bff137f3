"""Comparison-ready columns for identity resolution, built from dirty CRM fields.

Why: two records of one customer rarely agree byte for byte ("Bob  O'Brien" vs "ROBERT OBRIEN",
"07911 123456" vs "+44 7911 123456"). Matching compares *standardised* values, while the raw
values are kept untouched for display and audit, so every function here returns a new Series.

Conventions shared by every function:

* Input is a pandas Series of anything (str, numbers, mixed objects); output is aligned with it
  (same index and name). Text outputs have pandas' default ``str`` dtype; a missing value is NA
  (``pd.isna`` is true), never an empty string.
* Work is done once per *distinct* value and mapped back (Arrow dictionary encoding), so a
  million rows with heavy repetition cost roughly as much as their unique values. The
  distinct values are processed by Arrow kernels (RE2, vectorised) when they are printable
  ASCII, and by the per-value Python definition otherwise; both give the same answers.
* Values meaning "missing" ("n/a", "unknown", "test@test.com", "0000000000", ...) are blanked by
  `blank_placeholders`; the normalisers take a ``placeholders`` argument (``None`` disables it).

Keys such as `email_match_key`, `nickname_key` and `phonetic_key` are *matching keys*: lossy on
purpose, for blocking and comparison only, never shown to users.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Collection
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

import jellyfish
import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii
from nicknames import NickNamer

from ccv.identity.threads import run_together

__all__ = [
    "PLACEHOLDERS",
    "STD_COLUMNS",
    "blank_placeholders",
    "clean_text",
    "email_match_key",
    "fold",
    "nickname_key",
    "normalize_email",
    "normalize_loyalty_id",
    "normalize_phone",
    "normalize_postcode",
    "parse_date",
    "phonetic_key",
    "split_full_name",
    "standardize_customers",
]

DATE_DTYPE = pd.ArrowDtype(pa.date32())
"""dtype of `parse_date` output: a real calendar date (no time, no timezone), NA for missing."""

PLACEHOLDERS: frozenset[str] = frozenset(
    {
        # "missing" spelled out
        "n/a",
        "na",
        "n.a.",
        "none",
        "null",
        "nil",
        "unknown",
        "not known",
        "not given",
        "not provided",
        "not applicable",
        "no email",
        "no phone",
        "tbc",
        "-",
        "--",
        "?",
        ".",
        "x",
        "xx",
        "xxx",
        # dummy e-mail addresses typed to get past a mandatory field
        "test@test.com",
        "noemail@noemail.com",
        "no@email.com",
        "none@none.com",
        "na@na.com",
        "no@no.com",
        "noemail@email.com",
        "email@email.com",
        "test@example.com",
        # dummy phone numbers (all-same-digit ones are caught separately)
        "0000000000",
        "00000000000",
        "1234567890",
        "01234567890",
        "0123456789",
        "123456789",
    }
)
"""Default values that mean "missing" (see `blank_placeholders` for how they are compared).
Note "na" is also a real surname (Korean 나): pass your own set to keep it."""

# --------------------------------------------------------------------------------------------
# plumbing: distinct values, vectorised over Arrow, with an exact per-value Python fallback
#
# Every standardiser is written twice: a per-value Python function (the definition, used for
# anything unusual) and an Arrow kernel that gives the same answers for printable-ASCII text,
# which is nearly all CRM data. `_route` sends each distinct value to one of the two; a kernel
# may also hand values back ("undecided") when a shape is rare and hard to vectorise exactly.
# Python's text semantics (`str.split`, `casefold`, `\s`, `\w`, NFKC) differ from RE2/utf8proc
# only outside printable ASCII, which is why that is the line between the two paths.

_TEXT = pa.large_string()
_NULL_TEXT = pa.scalar(None, type=_TEXT)


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


# --------------------------------------------------------------------------------------------
# text

# Zero-width and invisible format characters that survive copy-paste (ZWSP, ZWNJ, ZWJ, word
# joiner, BOM, soft hyphen, LRM/RLM), plus control characters that are not whitespace.
_INVISIBLE = re.compile(
    "[\u200b-\u200d\u2060\ufeff\u00ad\u200e\u200f\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"
)
_APOSTROPHES_AND_DOTS = re.compile(r"['`.]")  # "O'Brien" -> "OBrien", "J.R." -> "JR"
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def _clean(text: str) -> str | None:
    if not (text.isascii() and text.isprintable()):  # the common case needs neither step
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    text = " ".join(text.split())  # every Unicode whitespace run -> one space; strips ends
    return text or None


def _fold_cleaned(cleaned: str) -> str | None:
    folded = (cleaned if cleaned.isascii() else anyascii(cleaned)).casefold()
    folded = _APOSTROPHES_AND_DOTS.sub("", folded)
    folded = _NOT_ALNUM.sub(" ", folded).strip()
    return folded or None


def _fold(text: str) -> str | None:
    cleaned = _clean(text)
    return None if cleaned is None else _fold_cleaned(cleaned)


def _clean_ascii(values: pa.Array) -> pa.Array:
    """`_clean` for printable ASCII: the only whitespace is " ", so squeeze runs and trim."""
    return _empty_to_null(pc.ascii_trim(_sub(values, "  +", " "), " "))


def _fold_cleaned_ascii(cleaned: pa.Array) -> pa.Array:
    """`_fold_cleaned` for printable ASCII (casefold of ASCII is lower-casing)."""
    folded = _sub(_sub(pc.ascii_lower(cleaned), "['`.]"), "[^0-9a-z]+", " ")
    return _empty_to_null(pc.ascii_trim(folded, " "))


def _clean_values(values: pa.Array) -> pa.Array:
    return _route1(values, lambda v: (_clean_ascii(v), None), _clean)


def clean_text(s: pd.Series) -> pd.Series:
    """Tidy text without changing its meaning: NFKC, drop invisible/control chars, one space.

    Why: fullwidth letters, zero-width spaces and doubled blanks make equal values look
    different. Case and accents are kept (see `fold` for comparison).

    >>> clean_text(pd.Series(["  Ｊｏｈｎ\u200b  Smith ", "\u200b", None])).tolist()
    ['John Smith', nan, nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _clean_values(uniques), s)


def _fold_values(values: pa.Array) -> pa.Array:
    return _route1(values, lambda v: (_fold_cleaned_ascii(_clean_ascii(v)), None), _fold)


def fold(s: pd.Series) -> pd.Series:
    """`clean_text`, then ASCII-transliterate, casefold and reduce punctuation: for comparing names.

    Apostrophes and dots are dropped ("O'Brien" -> "obrien", "J.R." -> "jr"); every other run of
    non-alphanumerics, hyphens included, becomes one space ("Smith-Jones" -> "smith jones").

    >>> fold(pd.Series(["Zoë O'Brien", "SMITH-JONES", "Łódź", "--"])).tolist()
    ['zoe obrien', 'smith jones', 'lodz', nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _fold_values(uniques), s)


# --------------------------------------------------------------------------------------------
# placeholders

_PHONEISH = re.compile(r"[0-9 +\-().]+")
_SQUEEZE = re.compile(r"[\s._-]+")  # "N.A." ~ "na", "not-given" ~ "not given"
_ALNUM = re.compile(r"[^\W_]")  # a letter or digit, in any script


@lru_cache(maxsize=8)
def _placeholder_sets(placeholders: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The placeholders casefolded, and casefolded without spaces, dots, hyphens, underscores."""
    exact = frozenset(p.casefold() for p in placeholders)
    squeezed = frozenset(_SQUEEZE.sub("", p) for p in exact) - {""}
    return exact, squeezed


def _placeholder_test(placeholders: Collection[str] | None) -> Callable[[str], bool]:
    """A predicate over *cleaned* text: does this value mean "missing"?"""
    if placeholders is None:
        return lambda _text: False
    exact, squeezed = _placeholder_sets(frozenset(placeholders))

    def is_placeholder(text: str) -> bool:
        lowered = text.casefold()
        if lowered in exact:
            return True
        if _SQUEEZE.sub("", lowered) in squeezed or not _ALNUM.search(text):
            return True
        if _PHONEISH.fullmatch(text):  # "0000 000000", "(999) 999-9999"
            digits = re.sub(r"\D", "", text)
            return len(digits) >= 6 and digits.count(digits[0]) == len(digits)
        return False

    return is_placeholder


def _blank_or(
    fn: Callable[[str], str | None], is_placeholder: Callable[[str], bool]
) -> Callable[[str], str | None]:
    """Per-value pipeline: clean, blank placeholders, then ``fn`` on the cleaned text."""

    def run(text: str) -> str | None:
        cleaned = _clean(text)
        return None if cleaned is None or is_placeholder(cleaned) else fn(cleaned)

    return run


_PHONE_PUNCT = r"[ +\-().]*"
_SAME_DIGIT_PHONE = "^(?:" + "|".join(
    f"{_PHONE_PUNCT}(?:{d}{_PHONE_PUNCT}){{6,}}" for d in "0123456789"
)
_SAME_DIGIT_PHONE += ")$"  # = _PHONEISH.fullmatch and 6+ digits, all the same


def _re2_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching exactly it (hex escapes for anything but [0-9A-Za-z])."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


@lru_cache(maxsize=8)
def _placeholder_rules(placeholders: frozenset[str]) -> tuple[pa.Array, str | None]:
    """The casefolded placeholders, and one RE2 matching text whose squeezed form is one."""
    exact, squeezed = _placeholder_sets(placeholders)
    sep = "[ ._-]*"  # _SQUEEZE on printable ASCII
    spelled = [sep.join(_re2_literal(ch) for ch in p) for p in sorted(squeezed)]
    pattern = f"^{sep}(?:{'|'.join(spelled)}){sep}$" if spelled else None
    return pa.array(sorted(exact), type=_TEXT), pattern


def _placeholder_mask_ascii(cleaned: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    """`_placeholder_test` over printable-ASCII *cleaned* values (null stays null)."""
    if placeholders is None:
        return pa.array(np.zeros(len(cleaned), dtype=bool))
    exact, squeezed_pattern = _placeholder_rules(frozenset(placeholders))
    lowered = pc.ascii_lower(cleaned)  # = casefold for ASCII
    hit = pc.is_in(lowered, value_set=exact)
    if squeezed_pattern is not None:
        hit = pc.or_(hit, _matches(lowered, squeezed_pattern))
    hit = pc.or_(hit, pc.invert(_matches(cleaned, "[A-Za-z0-9]")))
    return pc.or_(hit, _matches(cleaned, _SAME_DIGIT_PHONE))


def _blank_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    def kernel(v: pa.Array) -> tuple[pa.Array, None]:
        cleaned = _clean_ascii(v)
        return _null_where(_placeholder_mask_ascii(cleaned, placeholders), cleaned), None

    return _route1(values, kernel, _blank_or(lambda c: c, _placeholder_test(placeholders)))


def blank_placeholders(
    s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS
) -> pd.Series:
    """Replace values that mean "missing" with NA; other values are returned cleaned.

    Why: "N/A" or "test@test.com" in many records would otherwise link unrelated customers.
    A value matches when its cleaned form is in ``placeholders`` case-insensitively, also once
    spaces, dots, hyphens and underscores are removed from both ("N. A." ~ "na",
    "Not-Given" ~ "not given"); when it has no letters or digits ("-", "?"); or when it is
    phone-like with 6+ digits, all the same.

    >>> blank_placeholders(pd.Series(["N/A", "Unknown", "000 000 0000", "Ann", "-"])).tolist()
    [nan, nan, nan, 'Ann', nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _blank_values(uniques, placeholders), s)


def _folded_field_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    """fold(blank_placeholders(values)) in one pass: how first, last name and city compare."""

    def kernel(v: pa.Array) -> tuple[pa.Array, None]:
        cleaned = _clean_ascii(v)
        mask = _placeholder_mask_ascii(cleaned, placeholders)
        return _null_where(mask, _fold_cleaned_ascii(cleaned)), None

    return _route1(values, kernel, _blank_or(_fold_cleaned, _placeholder_test(placeholders)))


# --------------------------------------------------------------------------------------------
# names

_TITLES = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "professor",
        "sir",
        "rev",
        "revd",
        "reverend",
        "dame",
        "lady",
        "lord",
        "master",
        "mstr",
        "fr",
    ]
)
_SUFFIXES = frozenset(["jr", "jnr", "sr", "snr", "ii", "iii", "iv", "phd", "md", "esq"])
_PARTICLES = frozenset(
    [
        "van",
        "von",
        "de",
        "der",
        "den",
        "da",
        "di",
        "le",
        "la",
        "du",
        "st",
        "del",
        "della",
        "dos",
        "das",
        "ter",
    ]
)


def _bare(token: str) -> str:
    """Token as compared against the word lists: lower-case, no dots or trailing comma."""
    return token.replace(".", "").strip(",").casefold()


def _drop_leading_titles(tokens: list[str]) -> list[str]:
    while tokens and _bare(tokens[0]) in _TITLES:
        tokens = tokens[1:]
    return tokens


def _split_name(text: str) -> tuple[str | None, str | None]:
    cleaned = _clean(text)
    if cleaned is None:
        return None, None
    # "Smith, Jr." / "Smith, John, PhD": drop comma-separated parts that are only suffixes
    parts = [p.strip() for p in cleaned.split(",")]
    parts = [p for p in parts if p and not all(_bare(t) in _SUFFIXES for t in p.split())]
    if len(parts) >= 2:  # "LAST, First Middle"; a title may lead either part ("Mrs BELL, Emma")
        given = _drop_leading_titles(parts[1].split())
        surname = _drop_leading_titles(parts[0].split())
        tokens = [*given, *surname]
        last_start = len(given)
    else:
        tokens = " ".join(parts).split()
        last_start = None
    had_title = False
    while tokens and _bare(tokens[0]) in _TITLES:
        tokens.pop(0)
        had_title = True
        if last_start is not None:
            last_start -= 1
    while tokens and _bare(tokens[-1]) in _SUFFIXES:
        tokens.pop()
    tokens = [t.strip(",") for t in tokens if t.strip(",")]
    if not tokens:
        return None, None
    if last_start is not None:  # comma form: given names, then the surname part
        given, surname = tokens[:last_start], tokens[last_start:]
        return (given[0] if given else None), (" ".join(surname) or None)
    if len(tokens) == 1:  # "Mr Smith" is a surname; a lone "Smith" is taken as a given name
        return (None, tokens[0]) if had_title else (tokens[0], None)
    start = len(tokens) - 1
    while start > 1 and _bare(tokens[start - 1]) in _PARTICLES:
        start -= 1
    return tokens[0], " ".join(tokens[start:])


def _token_regex(words: frozenset[str]) -> str:
    """RE2 for one token whose `_bare` form (dots removed, ASCII lower-cased) is in ``words``."""
    spelled = sorted((r"\.*".join(re.escape(ch) for ch in w) for w in words), key=len)
    return r"(?i:\.*(?:" + "|".join(reversed(spelled)) + r")\.*)"


_TITLE_TOKEN = _token_regex(_TITLES)
_SUFFIX_TOKEN = _token_regex(_SUFFIXES)
_PARTICLE_TOKEN = _token_regex(_PARTICLES)
_LEADING_TITLES = f"^(?:{_TITLE_TOKEN}(?: |$))+"
_TRAILING_SUFFIXES = f"(?:(?:^| ){_SUFFIX_TOKEN})+$"
_ONLY_SUFFIXES = f"^{_SUFFIX_TOKEN}(?: {_SUFFIX_TOKEN})*$"


def _split_name_ascii(cleaned: pa.Array) -> tuple[list[pa.Array], pa.Array]:
    """`_split_name` for printable-ASCII *cleaned* values: tokens are separated by one space.

    Decides names with no comma, and "SURNAME, Given" with one comma where neither side is only
    suffixes and the surname keeps a word that is not a title or suffix; hands back the rest
    (two or more commas, empty sides: rare, and the list logic is easier to read in Python).
    """
    n_commas = pc.count_substring(cleaned, ",")
    is_comma = pc.equal(n_commas, 1)
    # --- no comma: titles lead, suffixes trail, particles join the surname
    plain = _null_where(pc.greater(n_commas, 0), cleaned)
    had_title = _matches(plain, f"^{_TITLE_TOKEN}(?: |$)")
    rest = _empty_to_null(_sub(_sub(plain, _LEADING_TITLES), _TRAILING_SUFFIXES))
    first_token, after_first = _halves(rest, " ")
    last_token = _halves(rest, " ", reverse=True)[1]  # null when there is one token
    one_token = pc.is_null(after_first)
    particle_run = f"(?:^| )(?P<s>(?:{_PARTICLE_TOKEN} )*[^ ]+)$"
    has_particle = pc.fill_null(_matches(after_first, f"(?:^| ){_PARTICLE_TOKEN} [^ ]+$"), False)
    if pc.any(has_particle).as_py():  # "van der Berg": the run of particles before the last word
        runs = pc.extract_regex(after_first.filter(has_particle), particle_run)
        last_token = pc.replace_with_mask(last_token, has_particle, pc.struct_field(runs, "s"))
    plain_first = _null_where(pc.and_kleene(one_token, had_title), first_token)
    plain_last = pc.if_else(one_token, _null_where(pc.invert(had_title), rest), last_token)
    # --- one comma: "SURNAME, Given"
    surname_part, given_part = _halves(_null_where(pc.invert(is_comma), cleaned), ",")
    surname_part, given_part = pc.ascii_trim(surname_part, " "), pc.ascii_trim(given_part, " ")
    surname_words = _sub(surname_part, _LEADING_TITLES)
    given_words = _empty_to_null(_sub(given_part, _LEADING_TITLES))
    comma_undecided = pc.or_kleene(
        pc.or_kleene(pc.equal(surname_part, ""), pc.equal(given_part, "")),
        pc.or_kleene(
            pc.or_kleene(
                _matches(surname_part, _ONLY_SUFFIXES), _matches(given_part, _ONLY_SUFFIXES)
            ),
            pc.or_kleene(pc.equal(surname_words, ""), _matches(surname_words, _ONLY_SUFFIXES)),
        ),
    )
    comma_first = _halves(given_words, " ")[0]
    comma_last = _sub(surname_words, _TRAILING_SUFFIXES)
    first = pc.if_else(is_comma, comma_first, plain_first)
    last = pc.if_else(is_comma, comma_last, plain_last)
    undecided = pc.or_kleene(pc.greater(n_commas, 1), pc.and_kleene(is_comma, comma_undecided))
    return [first, last], undecided


def _split_values(
    values: pa.Array, placeholders: Collection[str] | None, folded: bool
) -> list[pa.Array]:
    """First and last name of each value; placeholders blanked first unless ``placeholders`` is
    None; both parts folded when ``folded`` (the comparison form used by
    `standardize_customers`)."""
    is_placeholder = _placeholder_test(placeholders)

    def slow(text: str) -> tuple[str | None, str | None]:
        if placeholders is not None:  # as blank_placeholders then split_full_name: cleaned twice
            text = _clean(text)  # type: ignore[assignment]
            if text is None or is_placeholder(text):
                return None, None
        parts = _split_name(text)
        return tuple(_fold(p) if folded and p is not None else p for p in parts)  # type: ignore[return-value]

    def kernel(v: pa.Array) -> tuple[list[pa.Array], pa.Array]:
        cleaned = _clean_ascii(v)
        cleaned = _null_where(_placeholder_mask_ascii(cleaned, placeholders), cleaned)
        parts, undecided = _split_name_ascii(cleaned)
        if folded:
            parts = [_fold_cleaned_ascii(_clean_ascii(p)) for p in parts]
        return parts, undecided

    return _route(values, kernel, slow)


def split_full_name(full: pd.Series) -> pd.DataFrame:
    """Split a one-field name into ``first_name`` and ``last_name`` (cleaned, original case).

    Why: some sources only have "full name", but matching compares first and last separately.
    Titles (Mr, Dr, ...) and suffixes (Jr, III, PhD, ...) are removed, "LAST, First" is
    understood, particles (van, de, der, St, ...) stay with the surname, and middle names are
    dropped (first_name is the first given name). A single word is a first name, unless it
    followed a title ("Mr Smith").

    >>> split_full_name(pd.Series(["Dr. Jane van der Berg", "SMITH, John Paul", "Mr Smith",
    ...                            "Mrs BELL, Emma"]))
      first_name     last_name
    0       Jane  van der Berg
    1       John         SMITH
    2        NaN         Smith
    3       Emma          BELL
    """
    codes, uniques = _distinct(full)
    first, last = _split_values(uniques, None, folded=False)
    return pd.DataFrame(
        {"first_name": _rows(codes, first, full), "last_name": _rows(codes, last, full)}
    )


# Common English nicknames whose canonical the package cannot decide well on its own: its data
# is symmetric and noisy ("bob has_nickname robert", "bill" under both robert and william,
# "jane" under virginia), so these are pinned. canonical -> nicknames.
_PREFERRED_CANONICAL: dict[str, str] = {
    "robert": "bob bobby rob robbie robby bert",
    "william": "bill billy will willy willie",
    "elizabeth": "beth betty betsy bess bessie liz lizzie lizzy libby eliza",
    "james": "jim jimmy jimmie jamie",
    "john": "jack johnny jon",
    "katherine": "kate katie kathy kat",
    "richard": "dick rick ricky rich richie",
    "michael": "mike mikey mick mickey",
    "david": "dave davey davie",
    "daniel": "dan danny",
    "christopher": "chris kit",
    "samuel": "sam sammy",
    "anthony": "tony",
    "stephen": "steve stevie",
    "nicholas": "nick nicky",
    "edward": "ed eddie ted teddy ned",
    "andrew": "andy drew",
    "matthew": "matt",
    "patrick": "pat paddy",
    "margaret": "maggie peggy meg",
    "henry": "harry hank hal",
    "mary": "polly molly",
    "sarah": "sally sadie",
    "ann": "annie",
    "alexander": "alex",
    "alexandra": "sandy",
    "ronald": "ron ronnie",
    "donald": "don donnie",
    "albert": "al",
    "frederick": "fred freddie freddy",
    "lawrence": "larry",
    "gerald": "jerry gerry",
    "charles": "charlie chuck chas",
    "abigail": "abby abbie",
    "cynthia": "cindy",
    "jessica": "jess jessie",
    "alison": "ally",
    "nathan": "nate",
    "zachary": "zach zack",
    "philip": "phil",
    "kenneth": "ken kenny",
    "kimberly": "kim",
    "francis": "frank frankie",
    "eleanor": "ellie nell",
    "amanda": "mandy",
    "susan": "sue susie suzy",
    "jennifer": "jenny jen",
    "rebecca": "becky becca",
    "benjamin": "ben benny",
    "joseph": "joe joey",
    "thomas": "tom tommy",
    "timothy": "tim timmy",
    "gregory": "greg",
    "walter": "walt wally",
    "victoria": "vicky tori",
    "deborah": "debbie deb",
    "gabriel": "gabe",
    "joshua": "josh",
    "raymond": "ray",
    "peter": "pete",
    "oliver": "olly ollie",
    # common UK given names in their own right, which the package files under older names
    # (daisy -> margaret, ali -> almena, lily -> lillah, noah -> manoah): they key to themselves
    "ali": "",
    "daisy": "",
    "lily": "",
    "noah": "",
    "rosie": "",
}


@cache
def _nickname_table() -> dict[str, str]:
    """name -> canonical key for every name the `nicknames` package knows (built once)."""
    namer = NickNamer()
    nicknames_of = namer.nickname_lookup  # canonical -> its nicknames
    canonicals_of = namer.canonical_lookup  # nickname -> canonicals it may stand for
    pinned = {canon: canon for canon in _PREFERRED_CANONICAL}
    for canon, nicks in _PREFERRED_CANONICAL.items():
        pinned.update(dict.fromkeys(nicks.split(), canon))

    def common_prefix(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    def key(name: str) -> str:
        # Walk towards the formal name; every step is strictly longer, so this terminates.
        while name not in pinned:
            longer = [c for c in canonicals_of.get(name, ()) if len(c) > len(name)]
            if not longer or name in nicknames_of:  # already formal
                return name
            name = max(
                longer,
                key=lambda c, n=name: (
                    len(nicknames_of.get(c, ())),
                    common_prefix(n, c),
                    [-ord(ch) for ch in c],  # alphabetically smallest wins the final tie
                ),
            )
        return pinned[name]

    names = set(nicknames_of) | set(canonicals_of) | set(pinned)
    return {name: key(name) for name in names}


def _nickname_values(first_folded: pa.Array) -> pa.Array:
    table = _nickname_table()

    def key(text: str) -> str | None:
        name = " ".join(text.casefold().split())
        return table.get(name, name) or None

    return _per_distinct(first_folded, key)


def _phonetic_values(folded: pa.Array) -> pa.Array:
    return _per_distinct(folded, _metaphone)


def nickname_key(first_folded: pd.Series) -> pd.Series:
    """Map a folded first name to one canonical formal name, so nicknames compare equal.

    Why: "Bob Smith" and "Robert Smith" should block and compare as the same first name.
    How the key is chosen (deterministic; a matching key, never shown):

    1. About 150 common English nicknames of 60 formal names are pinned (bob/rob/bobby ->
       robert, bill/will -> william, liz/beth/betty -> elizabeth, jim/jimmy -> james,
       jack/jon -> john, ...), because the `nicknames` data is symmetric and noisy: it links
       "bill" to both robert and william, and lists "jane" as a nickname of virginia. A few
       names common in their own right in the UK (Ali, Daisy, Lily, ...) are pinned to
       themselves; Liam is deliberately not tied to William.
    2. Otherwise a name is formal (maps to itself) if it has nicknames of its own in the
       package or no longer canonical; else it steps to the canonical with the most nicknames
       (a proxy for how common it is), then the longest shared prefix, then the alphabetically
       smallest, and repeats until formal.
    3. Unknown names (and multi-word values not in the package) map to themselves.

    An ambiguous nickname can only have one key ("sam" -> samuel, not samantha); later
    comparison steps (phonetic and fuzzy similarity) must not rely on this key alone.

    >>> nickname_key(pd.Series(["bob", "robert", "liz", "elizabeth", "zebedee"])).tolist()
    ['robert', 'robert', 'elizabeth', 'elizabeth', 'zebedee']
    """
    codes, uniques = _distinct(first_folded)
    return _rows(codes, _nickname_values(uniques), first_folded)


def _metaphone(text: str) -> str | None:
    letters = re.sub(r"[^a-z]", "", text.casefold())
    return (jellyfish.metaphone(letters) or None) if letters else None


def phonetic_key(s_folded: pd.Series) -> pd.Series:
    """Metaphone code of a folded name, spaces removed, for blocking on names that sound alike.

    Why metaphone rather than NYSIIS: on British/English names it is the one that merges the
    common spelling variants: Smith/Smyth -> SM0, Catherine/Katherine/Kathryn -> K0RN,
    Stephen/Steven -> STFN (NYSIIS splits the first two). Spaces are removed first so
    "van der berg" and "vanderberg" agree.

    >>> phonetic_key(pd.Series(["smith", "smyth", "van der berg", "vanderberg"])).tolist()
    ['SM0', 'SM0', 'FNTRBRK', 'FNTRBRK']
    """
    codes, uniques = _distinct(s_folded)
    return _rows(codes, _phonetic_values(uniques), s_folded)


# --------------------------------------------------------------------------------------------
# e-mail

_EMAIL = re.compile(
    r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59}))"
)


def _normalize_email_text(text: str, is_placeholder: Callable[[str], bool]) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    email = cleaned.lower()
    if email.startswith("mailto:"):
        email = email[len("mailto:") :]
    if email.startswith("<") and email.endswith(">"):
        email = email[1:-1]
    match = _EMAIL.fullmatch(email)
    if match is None or len(match["local"]) > 64 or len(match["domain"]) > 253:
        return None
    return None if is_placeholder(email) else email


_EMAIL_PARTS = f"^(?:{_EMAIL.pattern})$"


def _email_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    def kernel(v: pa.Array) -> tuple[pa.Array, None]:
        cleaned = _clean_ascii(v)
        email = _sub(_sub(pc.ascii_lower(cleaned), "^mailto:"), "^<(.*)>$", r"\1")
        at = pc.find_substring(email, "@")  # the pattern allows exactly one
        domain_length = pc.subtract(pc.subtract(pc.utf8_length(email), at), 1)
        valid = pc.and_kleene(
            _matches(email, _EMAIL_PARTS),
            pc.and_kleene(pc.less_equal(at, 64), pc.less_equal(domain_length, 253)),
        )
        blank = pc.or_kleene(
            _placeholder_mask_ascii(cleaned, placeholders),
            _placeholder_mask_ascii(email, placeholders),
        )
        return _null_where(pc.or_kleene(blank, pc.invert(valid)), email), None

    is_placeholder = _placeholder_test(placeholders)
    return _route1(values, kernel, lambda text: _normalize_email_text(text, is_placeholder))


def normalize_email(s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS) -> pd.Series:
    """Clean and lower-case an e-mail address; syntactically invalid or placeholder -> NA.

    Why: a malformed address can never identify anyone, and case never distinguishes
    mailboxes in practice. Syntax: one "@", a dot-atom local part of at most 64 characters
    (no leading, trailing or doubled dots), a domain of at least two valid labels (letters,
    digits, inner hyphens) ending in an alphabetic or punycode TLD, no spaces. A ``mailto:``
    prefix or surrounding ``<>`` is removed. Internationalised (non-ASCII) addresses are
    rejected.

    >>> normalize_email(pd.Series([" Ann.Lee@Example.COM ", "a@@b.com", "a@b.com.", "x"])).tolist()
    ['ann.lee@example.com', nan, nan, nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _email_values(uniques, placeholders), s)


_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def _email_key(email: str) -> str | None:
    local, sep, domain = email.strip().lower().rpartition("@")
    if not sep or not local:
        return None
    base = local.split("+", 1)[0] or local  # "+tag" sub-addressing; keep "+x@" as is
    if domain in _GMAIL_DOMAINS:
        domain = "gmail.com"
        base = base.replace(".", "") or base
    return f"{base}@{domain}"


def _email_key_ascii(values: pa.Array) -> tuple[pa.Array, None]:
    """`_email_key` for printable ASCII: the last "@" splits local part and domain."""
    email = pc.ascii_lower(pc.utf8_trim(values, " "))
    local, domain = _halves(email, "@", reverse=True)  # rpartition("@")
    local = _empty_to_null(_null_where(pc.is_null(domain), local))
    base = _sub(local, r"\+.*$")  # "+tag" sub-addressing
    base = pc.if_else(pc.equal(base, ""), local, base)  # keep "+x@" as is
    gmail = pc.is_in(domain, value_set=pa.array(sorted(_GMAIL_DOMAINS), type=_TEXT))
    undotted = pc.replace_substring(base, ".", "")
    base = pc.if_else(pc.and_kleene(gmail, pc.not_equal(undotted, "")), undotted, base)
    domain = pc.if_else(gmail, "gmail.com", domain)
    return _concat(base, "@", domain), None


def _email_key_values(values: pa.Array) -> pa.Array:
    return _route1(values, _email_key_ascii, _email_key, cleans_first=False)


def email_match_key(email_normalized: pd.Series) -> pd.Series:
    """A *matching key* for an already normalised e-mail; never show it to users.

    Why: one mailbox hides behind several spellings. For every provider a ``+tag`` is
    dropped (ann+shop@x.com -> ann@x.com); for Gmail, dots in the local part are ignored and
    googlemail.com is gmail.com. Other providers' dots are significant and kept.

    >>> email_match_key(pd.Series(["j.o.e+promo@googlemail.com", "ann+x@corp.co.uk"])).tolist()
    ['joe@gmail.com', 'ann@corp.co.uk']
    """
    codes, uniques = _distinct(email_normalized)
    return _rows(codes, _email_key_values(uniques), email_normalized)


# --------------------------------------------------------------------------------------------
# phone and identifiers

# Excel turns long digit strings into floats shown as "4.47700900123E+11". Such a value is
# only usable when every digit survived: the mantissa has exactly `exponent` decimals.
_SCIENTIFIC = re.compile(r"(\d)(?:[.,](\d+))?[eE]\+?(\d{1,2})")


def _expand_scientific(text: str) -> str | None:
    """Digits of an Excel scientific-notation value when exact, "" when lossy, None if not one."""
    match = _SCIENTIFIC.fullmatch(text.replace(" ", ""))
    if match is None:
        return None
    lead, decimals, exponent = match[1], match[2] or "", int(match[3])
    if len(decimals) != exponent:  # zeros were padded (digits lost) or a fraction remains
        return ""
    try:
        return str(int(Decimal(f"{lead}.{decimals}E{exponent}" if decimals else lead)))
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        return ""


_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
# The shapes of a UK mobile number people type; group 1 is the national significant number.
_UK_MOBILE_SHAPE = re.compile(r"(?:\+44|0044|44(?=7\d{9}$))?0?(7\d{9})")


@cache
def _uk_mobile_pattern() -> re.Pattern[str]:
    """libphonenumber's own mobile patterns for +44 (GB, GG, IM, JE): a match is valid."""
    patterns = [
        phonenumbers.PhoneMetadata.metadata_for_region(region).mobile.national_number_pattern
        for region in phonenumbers.region_codes_for_country_code(44)
    ]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def _phone_fast(text: str) -> str | None:
    """E.164 for the common UK mobile shapes without calling the parser; None = not sure.

    Only answers when the national number matches libphonenumber's +44 mobile patterns, which
    `is_valid_number` accepts; everything else goes to `_phone_slow` (same answers, verified
    in tests on a sample).
    """
    compact = _PHONE_SEPARATORS.sub("", text)
    match = _UK_MOBILE_SHAPE.fullmatch(compact)
    if match is None or not _uk_mobile_pattern().fullmatch(match[1]):
        return None
    return "+44" + match[1]


def _parse_valid(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_slow(text: str, region: str) -> str | None:
    e164 = _parse_valid(text, region)
    if e164 is None:
        # "447911123456": an international number missing its "+"
        digits = _PHONE_SEPARATORS.sub("", text)
        if digits.isascii() and digits.isdigit() and digits[0] != "0" and 8 <= len(digits) <= 15:
            e164 = _parse_valid("+" + digits, None)
    return e164


def _normalize_phone_text(
    text: str, region: str, is_placeholder: Callable[[str], bool]
) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    expanded = _expand_scientific(cleaned)
    if expanded is not None:
        if not expanded:
            return None
        cleaned = expanded
    if region == "GB":
        fast = _phone_fast(cleaned)
        if fast is not None:
            return fast
    return _phone_slow(cleaned, region)


_SCIENTIFIC_RE2 = r"^[0-9](?:[.,][0-9]+)?[eE]\+?[0-9]{1,2}$"
# A GB number in a shape whose parse is known: "+44"/"0044", an optional "(0)", then the national
# significant number; or "0" then it. libphonenumber reads all of these as +44 and that number.
_GB_PREFIX = r"^(?:(?:\+44|0044)0?|0)"
_GB_SHAPE = _GB_PREFIX + "[1-9][0-9]{3,13}$"
_GB_BARE = "^[1-35-9][0-9]{3,13}$|^4[0-35-9][0-9]{2,12}$"  # no prefix, not starting "44"
_GB_MOBILE_SHAPE = r"^(?:(?:\+44|0044)?0?|44)7[0-9]{9}$"  # = _UK_MOBILE_SHAPE; NSN = last 10


@cache
def _plus44_rules() -> tuple[str, list[tuple[str, str | None, dict[int, str]]]]:
    """libphonenumber's validity rules for +44 numbers, as RE2 patterns.

    Returns GB's general pattern (to spot national numbers that keep their "0") and, for each
    region sharing +44 in libphonenumber's order (GB, GG, IM, JE), its ``leading_digits`` and,
    per possible length, one pattern a valid number of that length must match in full (the
    general pattern, then any number type). `_valid_plus44` applies them as
    `phonenumbers.is_valid_number` does.
    """
    types = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager")
    types += ("uan", "voicemail", "fixed_line", "mobile")
    rules = []
    for region in phonenumbers.region_codes_for_country_code(44):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        general = meta.general_desc
        by_length: dict[int, str] = {}
        for length in general.possible_length:
            patterns = [
                desc.national_number_pattern
                for desc in (getattr(meta, t) for t in types)
                if desc is not None
                and desc.national_number_pattern
                and (not desc.possible_length or length in desc.possible_length)
            ]
            if patterns:
                any_type = "|".join(f"(?:{p})" for p in patterns)
                by_length[length] = f"^(?:{general.national_number_pattern})$", f"^(?:{any_type})$"
        rules.append((region, meta.leading_digits, by_length))
    gb = phonenumbers.PhoneMetadata.metadata_for_region("GB")
    return f"^(?:{gb.general_desc.national_number_pattern})$", rules


def _valid_plus44(nsn: pa.Array) -> np.ndarray:
    """Is +44 ``nsn`` valid per `phonenumbers.is_valid_number` (digits, no leading 0)."""
    _, rules = _plus44_rules()
    lengths = pc.fill_null(pc.utf8_length(nsn), 0).to_numpy(zero_copy_only=False)
    valid = np.zeros(len(nsn), dtype=bool)
    undecided = ~pc.is_null(nsn).to_numpy(zero_copy_only=False)  # region not chosen yet
    for _region, leading_digits, by_length in rules:
        known = np.zeros(len(nsn), dtype=bool)  # a known number type in this region
        for length, (general, any_type) in by_length.items():
            idx = np.flatnonzero(undecided & (lengths == length))
            if len(idx):
                subset = nsn.take(idx)
                ok = pc.and_(_matches(subset, general), _matches(subset, any_type))
                known[idx] = ok.to_numpy(zero_copy_only=False)
        if leading_digits is not None:  # the region owns these prefixes, valid or not
            owned = undecided & pc.fill_null(
                _matches(nsn, f"^(?:{leading_digits})"), False
            ).to_numpy(zero_copy_only=False)
        else:
            owned = undecided & known
        valid |= owned & known
        undecided &= ~owned
    return valid


@cache
def _country_rules(country_code: int) -> tuple[str | None, frozenset[int]] | None:
    """National prefix pattern and possible NSN lengths of a calling code (None: not simple)."""
    regions = phonenumbers.region_codes_for_country_code(country_code)
    metas = [phonenumbers.PhoneMetadata.metadata_for_region(r) for r in regions]
    if not metas or any(m is None or not m.general_desc.possible_length for m in metas):
        return None  # non-geographic or incomplete metadata: leave it to the parser
    lengths = frozenset(n for m in metas for n in m.general_desc.possible_length)
    return metas[0].national_prefix_for_parsing, lengths


def _retry_is_hopeless(digits: str) -> bool:
    """Is ``"+" + digits`` certainly not a valid number (`_phone_slow`'s retry)?

    True when no calling code starts it, or when the rest cannot be stripped of a national
    prefix and its length is possible in none of the code's regions: the parser then rejects
    it without our asking.
    """
    for n in range(1, 4):
        country_code = int(digits[:n])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return True
    rules = _country_rules(country_code)
    if rules is None:
        return False
    national_prefix, lengths = rules
    rest = digits[n:]
    if national_prefix and re.match(national_prefix, rest):
        return False
    return len(rest) not in lengths


def _phone_gb_ascii(cleaned: pa.Array) -> tuple[pa.Array, pa.Array]:
    """GB phone numbers in the shapes of `_GB_SHAPE` without the parser; the rest undecided.

    Exact because it applies libphonenumber's own metadata the way the parser and
    `is_valid_number` do for these shapes; values the parser might read differently (Excel
    notation, other shapes, a national number starting 180020, GB's "180020" national prefix)
    are left to `_phone_slow`.
    """
    compact = _strip_chars(cleaned, " -.()/")  # _PHONE_SEPARATORS on printable ASCII
    mobile_shape = pc.fill_null(_matches(compact, _GB_MOBILE_SHAPE), False)
    mobile = _null_where(pc.invert(mobile_shape), pc.utf8_slice_codeunits(compact, -10))
    mobile_ok = pc.fill_null(_matches(mobile, f"^(?:{_uk_mobile_pattern().pattern})$"), False)
    not_mobile = pc.invert(mobile_ok)
    shaped = pc.and_(pc.fill_null(_matches(compact, _GB_SHAPE), False), not_mobile)
    nsn = pc.replace_with_mask(
        pa.nulls(len(compact), type=_TEXT),
        shaped,
        pc.replace_substring_regex(compact.filter(shaped), _GB_PREFIX, "").cast(_TEXT),
    )
    # Bare digits ("7911 123456", Excel ate the 0) read as a national number; only a valid one is
    # decided here, an invalid one is retried as international by _phone_slow.
    bare = pc.and_(pc.fill_null(_matches(compact, _GB_BARE), False), not_mobile)
    nsn = pc.if_else(bare, compact, nsn)
    gb_general, _ = _plus44_rules()
    keeps_zero = _concat("0", nsn)  # viable with its "0": the parser would keep it
    odd = pc.fill_null(
        pc.or_(pc.starts_with(nsn, "180020"), _matches(keeps_zero, gb_general)), False
    )
    nsn = _null_where(odd, nsn)
    valid = pa.array(_valid_plus44(nsn))
    e164 = pc.if_else(
        mobile_ok,
        _concat("+44", mobile),
        pc.if_else(valid, _concat("+44", nsn), _NULL_TEXT),
    )
    decided = pc.or_(mobile_ok, pc.or_(pc.and_(shaped, pc.is_valid(nsn)), pc.and_(bare, valid)))
    # An invalid bare number is retried as "+digits" (8-15 digits); most such retries cannot
    # succeed (wrong length for the calling code), and those are decided as NA here.
    retried = pc.and_(pc.and_(bare, pc.invert(valid)), pc.invert(odd))
    if pc.any(retried).as_py():
        candidates = compact.filter(retried).to_pylist()
        hopeless = [len(d) < 8 or _retry_is_hopeless(d) for d in candidates]
        decided = pc.replace_with_mask(decided, retried, pa.array(hopeless))
    return e164, pc.invert(pc.fill_null(decided, False))


def _phone_values(values: pa.Array, region: str, placeholders: Collection[str] | None) -> pa.Array:
    """`_normalize_phone_text` of each value (``region`` upper-case)."""

    def kernel(v: pa.Array) -> tuple[pa.Array, pa.Array]:
        cleaned = _clean_ascii(v)
        cleaned = _null_where(_placeholder_mask_ascii(cleaned, placeholders), cleaned)
        scientific = pc.fill_null(
            _matches(pc.replace_substring(cleaned, " ", ""), _SCIENTIFIC_RE2), False
        )
        if region != "GB":  # only blanks and placeholders are decided here
            return cleaned.cast(_TEXT), pc.is_valid(cleaned)
        e164, undecided = _phone_gb_ascii(cleaned)
        undecided = pc.and_kleene(pc.or_kleene(undecided, scientific), pc.is_valid(cleaned))
        return e164, undecided

    is_placeholder = _placeholder_test(placeholders)
    return _route1(values, kernel, lambda text: _normalize_phone_text(text, region, is_placeholder))


def normalize_phone(
    s: pd.Series,
    default_region: str = "GB",
    placeholders: Collection[str] | None = PLACEHOLDERS,
) -> pd.Series:
    """Phone number to E.164 ("+447911123456") when `phonenumbers` says it is valid, else NA.

    Why: one number is written a dozen ways ("07911 123456", "+44 (0)7911 123456",
    "0044 7911 123456", "447911123456"); only its E.164 form compares. National numbers are
    read in ``default_region``; digit strings that are not valid there are retried as
    international ("+" prepended). Excel scientific notation ("4.47911123456E+11") is expanded
    only when every digit survived. Note libphonenumber rejects Ofcom's drama range
    07700 900000-900999, so those fictional numbers become NA.

    Each distinct value is parsed once. With ``default_region="GB"`` the usual shapes (+44,
    0044, (0), leading 0, bare digits) are decided by an Arrow kernel that applies
    libphonenumber's own +44 metadata and gives exactly the parser's answer; the parser itself
    runs only for the rest (other countries, odd punctuation, Excel notation).

    >>> normalize_phone(pd.Series(["07911 123456", "+44 (0)7911 123456", "12345"])).tolist()
    ['+447911123456', '+447911123456', nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _phone_values(uniques, default_region.upper(), placeholders), s)


_UK_POSTCODE = re.compile(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}")


def _normalize_postcode_text(text: str, is_placeholder: Callable[[str], bool]) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    upper = cleaned.upper()
    compact = re.sub(r"[\s\-.]", "", upper)
    if _UK_POSTCODE.fullmatch(compact):
        return f"{compact[:-3]} {compact[-3:]}"
    return upper


def _postcode_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    def kernel(v: pa.Array) -> tuple[pa.Array, None]:
        cleaned = _clean_ascii(v)
        upper = pc.ascii_upper(cleaned)
        compact = _strip_chars(upper, " -.")
        spaced = _concat(
            pc.utf8_slice_codeunits(compact, 0, -3), " ", pc.utf8_slice_codeunits(compact, -3)
        )
        uk = _matches(compact, "^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
        out = pc.if_else(uk, spaced, upper)
        return _null_where(_placeholder_mask_ascii(cleaned, placeholders), out), None

    is_placeholder = _placeholder_test(placeholders)
    return _route1(values, kernel, lambda text: _normalize_postcode_text(text, is_placeholder))


def normalize_postcode(
    s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS
) -> pd.Series:
    """Upper-case; UK-shaped postcodes get exactly one space before the 3-character inward code.

    Why: "sw1a1aa", "SW1A  1AA" and "Sw1a 1aa" are one address. Other countries' codes are only
    cleaned and upper-cased.

    >>> normalize_postcode(pd.Series(["sw1a1aa", " m1  1ae ", "75008", "d02 x285"])).tolist()
    ['SW1A 1AA', 'M1 1AE', '75008', 'D02 X285']
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _postcode_values(uniques, placeholders), s)


def _normalize_loyalty_text(text: str, is_placeholder: Callable[[str], bool]) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    expanded = _expand_scientific(cleaned)
    if expanded is not None:
        return expanded or None
    return re.sub(r"[^0-9A-Za-z]", "", cleaned).upper() or None


def _loyalty_values(values: pa.Array, placeholders: Collection[str] | None) -> pa.Array:
    def kernel(v: pa.Array) -> tuple[pa.Array, pa.Array]:
        cleaned = _clean_ascii(v)
        out = _empty_to_null(pc.ascii_upper(_sub(cleaned, "[^0-9A-Za-z]")))
        scientific = _matches(pc.replace_substring(cleaned, " ", ""), _SCIENTIFIC_RE2)
        return _null_where(_placeholder_mask_ascii(cleaned, placeholders), out), scientific

    is_placeholder = _placeholder_test(placeholders)
    return _route1(values, kernel, lambda text: _normalize_loyalty_text(text, is_placeholder))


def normalize_loyalty_id(
    s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS
) -> pd.Series:
    """Card/loyalty number as upper-case letters and digits only.

    Why: the same card appears as "2900 0012 3456 7", "2900-001234567" or, after a trip through
    Excel, "2.900001234567E+12"; the last is expanded back to its digits when exact and becomes
    NA when Excel rounded digits away. Leading zeros lost to Excel cannot be restored.

    >>> normalize_loyalty_id(pd.Series(["ab-12 34", "2.900001234567E+12", "2.9E+12"])).tolist()
    ['AB1234', '2900001234567', nan]
    """
    codes, uniques = _distinct(s)
    return _rows(codes, _loyalty_values(uniques, placeholders), s)


# --------------------------------------------------------------------------------------------
# dates


def parse_date(
    s: pd.Series, dayfirst: bool | None = None, formats: list[str] | None = None
) -> pd.Series:
    """Parse dates into a ``date32`` Series (`DATE_DTYPE`); unparseable or impossible -> NA.

    Why: birth dates arrive as text in mixed layouts and must compare as calendar dates.
    ``formats`` (strptime codes) are tried in order, first success wins. By default: ISO
    ``%Y-%m-%d`` (also with a time part), then ``%d/%m/%Y`` (``%m/%d/%Y`` when
    ``dayfirst=False``; ``None`` means day first, the UK convention), plus the same with "-"
    and "." separators. Impossible dates such as 31/02 are NA. Values that are already dates
    or timestamps pass through (time dropped).

    >>> parse_date(pd.Series(["1985-03-02", "02/03/1985", "31/02/2000"])).tolist()
    [datetime.date(1985, 3, 2), datetime.date(1985, 3, 2), <NA>]
    """
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return pd.Series(s.dt.floor("D").astype(DATE_DTYPE), index=s.index, name=s.name)
    if s.dtype == DATE_DTYPE:
        return s.copy()
    if formats is None:
        day, month = ("%d", "%m") if dayfirst is None or dayfirst else ("%m", "%d")
        formats = [
            "%Y-%m-%d",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S",
            *(f"{day}{sep}{month}{sep}%Y" for sep in "/-."),
        ]
    if _arrow_text(s) is not None:  # text only: clean the distinct values in Arrow
        arrow_codes, uniques = _distinct(s)
        codes = pc.fill_null(arrow_codes, -1).to_numpy(zero_copy_only=False)
        cleaned = _clean_values(uniques)
        is_text = pc.is_valid(cleaned)
        days = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[us]")
        positions = np.flatnonzero(is_text.to_numpy(zero_copy_only=False))
        todo = pd.Series(pd.array(cleaned.filter(is_text), dtype="str"), index=positions)
    else:
        codes, objects = pd.factorize(s, use_na_sentinel=True)
        objects = np.asarray(objects, dtype=object)
        days = np.full(len(objects), np.datetime64("NaT"), dtype="datetime64[us]")
        positions, texts = [], []
        for i, value in enumerate(objects):
            if isinstance(value, dt.date | np.datetime64):  # date, datetime, pd.Timestamp
                stamp = pd.Timestamp(value)
                days[i] = stamp.tz_localize(None).floor("D") if stamp.tz else stamp.floor("D")
            elif (cleaned_text := _clean(_to_text(value))) is not None:
                positions.append(i)
                texts.append(cleaned_text)
        todo = pd.Series(texts, index=positions, dtype="str")
    for fmt in formats:
        if todo.empty:
            break
        got = pd.to_datetime(todo, format=fmt, errors="coerce")
        ok = got.notna().to_numpy()
        days[todo.index[ok]] = got[ok].dt.floor("D").to_numpy(dtype="datetime64[us]")
        todo = todo[~ok]
    values = np.append(days, np.datetime64("NaT", "us"))[codes]
    return pd.Series(values, index=s.index, name=s.name).astype(DATE_DTYPE)


# --------------------------------------------------------------------------------------------
# the whole customer frame


STD_COLUMNS = (
    "std_first_name",
    "std_last_name",
    "std_first_name_key",
    "std_first_phonetic",
    "std_last_phonetic",
    "std_email",
    "std_email_key",
    "std_phone",
    "std_postcode",
    "std_city",
    "std_loyalty_id",
    "std_birth_date",
)
"""The columns `standardize_customers` adds, in order."""


def standardize_customers(
    df: pd.DataFrame,
    default_region: str = "GB",
    placeholders: Collection[str] | None = PLACEHOLDERS,
) -> pd.DataFrame:
    """Add the ``std_*`` comparison columns to a frame of canonical customer fields.

    Why: identity resolution compares and blocks on these, while the input columns stay as
    they were (the result is a copy). Missing input columns count as all-NA. Added columns:

    * ``std_first_name``, ``std_last_name``: folded; each falls back to `split_full_name` of
      ``full_name`` when missing
    * ``std_first_name_key`` (`nickname_key`), ``std_first_phonetic``, ``std_last_phonetic``
    * ``std_email``, ``std_email_key``, ``std_phone`` (E.164, ``default_region`` for national
      numbers), ``std_postcode``, ``std_city`` (folded), ``std_loyalty_id``
    * ``std_birth_date`` (``date32``; typed dates pass through)

    ``country`` is accepted but not used yet: phones are read in ``default_region``.

    Each input column is dictionary-encoded once and every derived key (nickname, phonetic,
    e-mail key) is computed on its distinct values, never on the rows; the fields are
    standardised in parallel threads.
    """
    na = pd.Series(pd.NA, index=df.index, dtype="object")
    region = default_region.upper()

    def column(name: str) -> pd.Series:
        return df[name] if name in df.columns else na

    def rows(name: str, transform: Callable[[pa.Array], pa.Array]) -> pa.Array:
        codes, values = _distinct(column(name))
        return transform(values).take(codes)

    def names() -> dict[str, pa.Array]:
        full_codes, full_values = _distinct(column("full_name"))
        split = dict(
            zip(
                ("first", "last"),
                _split_values(full_values, placeholders, folded=True),
                strict=True,
            )
        )
        keys = {
            "std_first_name": ("first", None),
            "std_last_name": ("last", None),
            "std_first_name_key": ("first", _nickname_values),
            "std_first_phonetic": ("first", _phonetic_values),
            "std_last_phonetic": ("last", _phonetic_values),
        }
        own = {}
        for part in ("first", "last"):
            codes, values = _distinct(column(f"{part}_name"))
            own[part] = codes, _folded_field_values(values, placeholders)
        result = {}
        for name, (part, key) in keys.items():  # a missing first/last name comes from full_name
            codes, values = own[part]
            use_split = pc.is_null(values.take(codes))
            mine, theirs = (values, split[part]) if key is None else (key(values), key(split[part]))
            result[name] = pc.if_else(use_split, theirs.take(full_codes), mine.take(codes))
        return result

    def emails() -> dict[str, pa.Array]:
        codes, values = _distinct(column("email"))
        email = _email_values(values, placeholders)
        return {
            "std_email": email.take(codes),
            "std_email_key": _email_key_values(email).take(codes),
        }

    jobs: dict[str, Callable[[], dict[str, pa.Array]]] = {
        "phone": lambda: {
            "std_phone": rows("phone", lambda v: _phone_values(v, region, placeholders))
        },
        "names": names,
        "email": emails,
        "postcode": lambda: {
            "std_postcode": rows("postcode", lambda v: _postcode_values(v, placeholders))
        },
        "city": lambda: {"std_city": rows("city", lambda v: _folded_field_values(v, placeholders))},
        "loyalty": lambda: {
            "std_loyalty_id": rows("loyalty_id", lambda v: _loyalty_values(v, placeholders))
        },
        "birth_date": lambda: {"std_birth_date": parse_date(column("birth_date"))},
    }
    # Arrow kernels release the GIL, so the fields run side by side on the machine's cores.
    results = {k: v for result in run_together(*jobs.values()) for k, v in result.items()}
    out = df.copy()
    for name in STD_COLUMNS[:-1]:
        out[name] = pd.Series(pd.array(results[name], dtype="str"), index=df.index)
    out["std_birth_date"] = results["std_birth_date"]
    return out
