"""Text clean-up and folding, and the placeholder values that mean "missing"."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii

from ccv.identity.standardize.kernels import (
    _TEXT,
    _clean,
    _distinct,
    _empty_to_null,
    _matches,
    _null_where,
    _route1,
    _rows,
    _sub,
)

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
# text

_APOSTROPHES_AND_DOTS = re.compile(r"['`.]")  # "O'Brien" -> "OBrien", "J.R." -> "JR"
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


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
