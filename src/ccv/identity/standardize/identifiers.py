"""Phone numbers (E.164 via `phonenumbers`, valid or of a possible length, with exact Arrow
shortcuts for common UK shapes), postcodes and loyalty ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from decimal import Decimal, InvalidOperation
from functools import cache

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.standardize.kernels import (
    _NULL_TEXT,
    _TEXT,
    _clean,
    _concat,
    _distinct,
    _empty_to_null,
    _matches,
    _null_where,
    _route1,
    _rows,
    _strip_chars,
    _sub,
)
from ccv.identity.standardize.text import (
    PLACEHOLDERS,
    _clean_ascii,
    _placeholder_mask_ascii,
    _placeholder_test,
)

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


# Ofcom's drama range: fictional by definition (TV scripts, test data), never a customer's.
# libphonenumber marks it invalid; it must not come back as a merely possible number.
_FICTIONAL = re.compile(r"\+447700900\d{3}")
_FICTIONAL_RE2 = r"^\+447700900[0-9]{3}$"


def _parse_valid(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_possible(text: str, region: str | None) -> str | None:
    """E.164 when the number has a possible length for its country (not only a local one),
    whether or not its range is allocated; fictional numbers excepted."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None if _FICTIONAL.fullmatch(e164) else e164


def _phone_slow(text: str, region: str) -> str | None:
    """The valid reading of `text` if it has one, else its possible reading.

    Order: a valid national number in ``region``; a valid international number missing its
    "+" ("447911123456"); a possible national number; a possible international one.
    """
    digits = _PHONE_SEPARATORS.sub("", text)
    international = (
        digits.isascii() and digits.isdigit() and digits[0] != "0" and 8 <= len(digits) <= 15
    )
    return (
        _parse_valid(text, region)
        or (international and _parse_valid("+" + digits, None))
        or _parse_possible(text, region)
        or (international and _parse_possible("+" + digits, None))
        or None
    )


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
_GB_ZERO_PREFIX = r"^(?:(?:\+44|0044)0|0)[1-9]"  # a national prefix "0" before the NSN
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


@cache
def _plus44_possible_lengths() -> list[int]:
    """NSN lengths `phonenumbers.is_possible_number` accepts for +44 (not the local-only ones):
    it judges every +44 number by GB's general description."""
    gb = phonenumbers.PhoneMetadata.metadata_for_region("GB")
    return sorted(gb.general_desc.possible_length)


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

    Exact (the answer of `_phone_slow`) because it applies libphonenumber's own metadata the
    way the parser, `is_valid_number` and `is_possible_number` do for these shapes; values
    the parser might read differently (Excel notation, other shapes, a national number
    starting 180020, GB's "180020" national prefix) are left to `_phone_slow`.
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
    # Invalid but of a possible length: kept (see `normalize_phone`). Values still undecided
    # below get the parser's answer instead, so this only needs to be right for decided ones.
    plus44 = _concat("+44", nsn)
    lengths = _plus44_possible_lengths()
    nsn_length = pc.utf8_length(nsn)
    possible_length = pc.fill_null(pc.is_in(nsn_length, pa.array(lengths)), False)
    fictional = pc.fill_null(_matches(plus44, _FICTIONAL_RE2), False)
    keep = pc.or_(valid, pc.and_(possible_length, pc.invert(fictional)))
    e164 = pc.if_else(keep, plus44, _NULL_TEXT)
    # The parser strips a national prefix "0" only when what remains has a possible length or
    # is too long; otherwise it keeps it ("047418404" is +44 047418404, possible, not valid).
    kept_zero = pc.and_(
        pc.and_(pc.fill_null(_matches(compact, _GB_ZERO_PREFIX), False), pc.invert(keep)),
        pc.fill_null(pc.less(nsn_length, max(lengths)), False),
    )
    with_zero = pc.if_else(
        pc.is_in(pc.add(nsn_length, 1), pa.array(lengths)), _concat("+440", nsn), _NULL_TEXT
    )
    e164 = pc.if_else(kept_zero, with_zero, e164)
    e164 = pc.if_else(mobile_ok, _concat("+44", mobile), e164)
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
    """Phone number to E.164 ("+447911123456"), or NA when it cannot be a phone number.

    Why: one number is written a dozen ways ("07911 123456", "+44 (0)7911 123456",
    "0044 7911 123456", "447911123456"); only its E.164 form compares. National numbers are
    read in ``default_region``; digit strings that are not valid there are retried as
    international ("+" prepended). Excel scientific notation ("4.47911123456E+11") is expanded
    only when every digit survived.

    A number `phonenumbers` does not call *valid* but whose length is *possible* for its
    country (``is_possible_number``: "07636 455665", a pager range; "07400 12345", a digit
    short) is kept, read the same way: the valid reading wins when there is one, then the
    possible national, then the possible international reading. It is identity evidence —
    two records with the same mistyped or unallocated number are likely one person, and one
    digit off still compares as a typo — and libphonenumber's range metadata lags what
    carriers allocate. Ofcom's drama range 07700 900000-900999 is fictional and stays NA.

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
