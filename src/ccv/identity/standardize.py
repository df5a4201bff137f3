"""Comparison-ready columns for identity resolution, built from dirty CRM fields.

Why: two records of one customer rarely agree byte for byte ("Bob  O'Brien" vs "ROBERT OBRIEN",
"07911 123456" vs "+44 7911 123456"). Matching compares *standardised* values, while the raw
values are kept untouched for display and audit, so every function here returns a new Series.

Conventions shared by every function:

* Input is a pandas Series of anything (str, numbers, mixed objects); output is aligned with it
  (same index and name). Text outputs have pandas' default ``str`` dtype; a missing value is NA
  (``pd.isna`` is true), never an empty string.
* Work is done once per *distinct* value and mapped back (`pd.factorize`), so a million rows
  with heavy repetition cost roughly as much as their unique values.
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
from anyascii import anyascii
from nicknames import NickNamer

__all__ = [
    "PLACEHOLDERS",
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
# plumbing: per-unique-value mapping


def _to_text(value: object) -> str:
    """A raw cell as text; integral floats lose their ".0" (a phone read as 7911123456.0)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factorize(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1 = missing) and the distinct non-missing values as an object array."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def _text_result(codes: np.ndarray, unique_results: list[str | None], like: pd.Series) -> pd.Series:
    """Broadcast per-unique text results back to rows (code -1 -> NA) as a ``str`` Series.

    Done in Arrow: ``take`` on the unique results is several times faster than building a
    million-element object array and converting it.
    """
    table = pa.array(unique_results, type=pa.large_string())
    rows = table.take(pa.array(codes, type=pa.int64(), mask=codes < 0))
    return pd.Series(pd.array(rows, dtype="str"), index=like.index, name=like.name)


def _map_unique(s: pd.Series, fn: Callable[[str], str | None]) -> pd.Series:
    """Apply ``fn`` (text -> text or None) once per distinct value of ``s``; NA stays NA."""
    codes, uniques = _factorize(s)
    return _text_result(codes, [fn(_to_text(u)) for u in uniques], s)


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


def clean_text(s: pd.Series) -> pd.Series:
    """Tidy text without changing its meaning: NFKC, drop invisible/control chars, one space.

    Why: fullwidth letters, zero-width spaces and doubled blanks make equal values look
    different. Case and accents are kept (see `fold` for comparison).

    >>> clean_text(pd.Series(["  Ｊｏｈｎ\u200b  Smith ", "\u200b", None])).tolist()
    ['John Smith', nan, nan]
    """
    return _map_unique(s, _clean)


def fold(s: pd.Series) -> pd.Series:
    """`clean_text`, then ASCII-transliterate, casefold and reduce punctuation: for comparing names.

    Apostrophes and dots are dropped ("O'Brien" -> "obrien", "J.R." -> "jr"); every other run of
    non-alphanumerics, hyphens included, becomes one space ("Smith-Jones" -> "smith jones").

    >>> fold(pd.Series(["Zoë O'Brien", "SMITH-JONES", "Łódź", "--"])).tolist()
    ['zoe obrien', 'smith jones', 'lodz', nan]
    """
    return _map_unique(s, _fold)


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
    return _map_unique(s, _blank_or(lambda cleaned: cleaned, _placeholder_test(placeholders)))


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
    codes, uniques = _factorize(full)
    pairs = [_split_name(_to_text(u)) for u in uniques]
    return pd.DataFrame(
        {
            "first_name": _text_result(codes, [p[0] for p in pairs], full),
            "last_name": _text_result(codes, [p[1] for p in pairs], full),
        }
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
    table = _nickname_table()

    def fn(text: str) -> str | None:
        name = " ".join(text.casefold().split())
        return table.get(name, name) or None

    return _map_unique(first_folded, fn)


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
    return _map_unique(s_folded, _metaphone)


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
    is_placeholder = _placeholder_test(placeholders)
    return _map_unique(s, lambda text: _normalize_email_text(text, is_placeholder))


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


def email_match_key(email_normalized: pd.Series) -> pd.Series:
    """A *matching key* for an already normalised e-mail; never show it to users.

    Why: one mailbox hides behind several spellings. For every provider a ``+tag`` is
    dropped (ann+shop@x.com -> ann@x.com); for Gmail, dots in the local part are ignored and
    googlemail.com is gmail.com. Other providers' dots are significant and kept.

    >>> email_match_key(pd.Series(["j.o.e+promo@googlemail.com", "ann+x@corp.co.uk"])).tolist()
    ['joe@gmail.com', 'ann@corp.co.uk']
    """
    return _map_unique(email_normalized, _email_key)


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

    Each distinct value is parsed once; common UK mobile shapes take a regex fast path that
    gives exactly the parser's answer.

    >>> normalize_phone(pd.Series(["07911 123456", "+44 (0)7911 123456", "12345"])).tolist()
    ['+447911123456', '+447911123456', nan]
    """
    is_placeholder = _placeholder_test(placeholders)
    region = default_region.upper()
    return _map_unique(s, lambda text: _normalize_phone_text(text, region, is_placeholder))


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


def normalize_postcode(
    s: pd.Series, placeholders: Collection[str] | None = PLACEHOLDERS
) -> pd.Series:
    """Upper-case; UK-shaped postcodes get exactly one space before the 3-character inward code.

    Why: "sw1a1aa", "SW1A  1AA" and "Sw1a 1aa" are one address. Other countries' codes are only
    cleaned and upper-cased.

    >>> normalize_postcode(pd.Series(["sw1a1aa", " m1  1ae ", "75008", "d02 x285"])).tolist()
    ['SW1A 1AA', 'M1 1AE', '75008', 'D02 X285']
    """
    is_placeholder = _placeholder_test(placeholders)
    return _map_unique(s, lambda text: _normalize_postcode_text(text, is_placeholder))


def _normalize_loyalty_text(text: str, is_placeholder: Callable[[str], bool]) -> str | None:
    cleaned = _clean(text)
    if cleaned is None or is_placeholder(cleaned):
        return None
    expanded = _expand_scientific(cleaned)
    if expanded is not None:
        return expanded or None
    return re.sub(r"[^0-9A-Za-z]", "", cleaned).upper() or None


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
    is_placeholder = _placeholder_test(placeholders)
    return _map_unique(s, lambda text: _normalize_loyalty_text(text, is_placeholder))


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
    codes, uniques = _factorize(s)
    days = np.full(len(uniques), np.datetime64("NaT"), dtype="datetime64[us]")
    positions, texts = [], []
    for i, value in enumerate(uniques):
        if isinstance(value, dt.date | np.datetime64):  # date, datetime, pd.Timestamp
            stamp = pd.Timestamp(value)
            days[i] = stamp.tz_localize(None).floor("D") if stamp.tz else stamp.floor("D")
        elif (cleaned := _clean(_to_text(value))) is not None:
            positions.append(i)
            texts.append(cleaned)
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
    """
    out = df.copy()
    na = pd.Series(pd.NA, index=df.index, dtype="object")

    def col(name: str) -> pd.Series:
        return df[name] if name in df.columns else na

    fold_unless_placeholder = _blank_or(_fold_cleaned, _placeholder_test(placeholders))

    def folded_field(series: pd.Series) -> pd.Series:  # = fold(blank_placeholders(series))
        return _map_unique(series, fold_unless_placeholder)

    first = folded_field(col("first_name"))
    last = folded_field(col("last_name"))
    need_split = (first.isna() | last.isna()) & col("full_name").notna()
    if need_split.any():  # full length and same index: no label alignment, duplicates are fine
        full = blank_placeholders(col("full_name").where(need_split), placeholders)
        split = split_full_name(full)
        first = first.where(first.notna(), fold(split["first_name"]))
        last = last.where(last.notna(), fold(split["last_name"]))

    out["std_first_name"] = first
    out["std_last_name"] = last
    out["std_first_name_key"] = nickname_key(first)
    out["std_first_phonetic"] = phonetic_key(first)
    out["std_last_phonetic"] = phonetic_key(last)
    out["std_email"] = normalize_email(col("email"), placeholders)
    out["std_email_key"] = email_match_key(out["std_email"])
    out["std_phone"] = normalize_phone(col("phone"), default_region, placeholders)
    out["std_postcode"] = normalize_postcode(col("postcode"), placeholders)
    out["std_city"] = folded_field(col("city"))
    out["std_loyalty_id"] = normalize_loyalty_id(col("loyalty_id"), placeholders)
    out["std_birth_date"] = parse_date(col("birth_date"))
    return out
