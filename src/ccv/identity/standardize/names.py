"""Names: full names split into first and last, titles and suffixes dropped, nickname groups
and phonetic keys for matching."""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache

import jellyfish
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from nicknames import NickNamer

from ccv.identity.standardize.kernels import (
    _clean,
    _distinct,
    _empty_to_null,
    _halves,
    _matches,
    _null_where,
    _per_distinct,
    _route,
    _rows,
    _sub,
)
from ccv.identity.standardize.text import (
    _clean_ascii,
    _fold,
    _fold_cleaned_ascii,
    _placeholder_mask_ascii,
    _placeholder_test,
)

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
    "patricia": "trish trisha tricia patty patsy",
    "catherine": "cathy cath",
    "christine": "chrissie chrissy",
    "barbara": "barb babs",
    "gillian": "gill gilly",
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


@cache
def _group_initials() -> dict[str, int]:
    """nickname-group key -> bit mask of the first letters (a–z) of the names in the group."""
    masks: dict[str, int] = {}
    for name, key in _nickname_table().items():
        for letter in {name[:1], key[:1]}:
            if key and "a" <= letter <= "z":
                masks[key] = masks.get(key, 0) | 1 << (ord(letter) - ord("a"))
    return masks


def group_initials(keys: pa.Array) -> np.ndarray:
    """Per nickname-group key (`nickname_key`), a bit mask (bit 0 = "a") of the first letters
    of every name in its group — "rebecca" (becky, becca) has r and b — or, for a name the
    nickname table does not know, of its own first letter; 0 for null or a non-letter.

    Why: a source that keeps only the initial may keep the initial of the name the person goes
    by ("b" for Becky, whose formal name is Rebecca; "t" for Ted, of Edward)."""
    masks = _group_initials()

    def mask(key: str | None) -> int:
        if not key:
            return 0
        found = masks.get(key)
        if found is not None:
            return found
        return 1 << (ord(key[0]) - ord("a")) if "a" <= key[0] <= "z" else 0

    return np.array([mask(k) for k in keys.to_pylist()], dtype=np.int64)


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

    1. About 160 common English nicknames of 65 formal names are pinned (bob/rob/bobby ->
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
