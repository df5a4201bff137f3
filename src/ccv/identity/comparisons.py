"""Comparison levels for candidate pairs, Splink-style.

Why: Fellegi–Sunter scoring needs, for every candidate pair and every attribute, one discrete
*level* of agreement ("exact", "Jaro-Winkler ≥ 0.92", ...), because m and u probabilities are
estimated per level. A `Comparison` is a named, ordered list of `Level` objects; a pair gets the
first level whose condition holds.

Level index convention (as in Splink), stored as int8 in ``<name>_level``:

* ``-1`` — null: a column in ``Comparison.null_when`` is missing on either side (or a
  ``null_if`` level holds); no evidence, weight 0;
* ``0`` — else: none of the levels holds (the values disagree);
* ``1 .. k`` — the listed levels, **higher = closer**: ``levels[0]`` (strictest) gets ``k``,
  ``levels[-1]`` (loosest) gets ``1``. Levels are tried from the strictest to the loosest.

Example: ``FIRST_NAME`` has six levels, so "jon" vs "jon" is 6 (exact), "bob" vs "robert" 4
(same nickname group), "jon" vs "john" 3 (Jaro-Winkler 0.93 ≥ 0.92), "ann" vs "peter" 0.

Speed: every string measure is computed with ``rapidfuzz.process.cpdist`` once per *distinct
pair of values* (records are factorised per column; a million pairs of first names are a few
tens of thousands of distinct name pairs), never in a Python loop per pair, and cached within
a comparison so "JW ≥ 0.92" and "JW ≥ 0.80" share one computation; a looser level is computed
only for the pairs no stricter level took. Each comparison has its own cache, dropped when it
is done, and the comparisons run side by side (`ccv.identity.threads`), so memory is the
output (≈ 1 byte per pair and comparison) plus one working set per core.
Column specs accept the key expressions of `ccv.identity.blocking` (``"email_local(std_email)"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import distance, fuzz, process

from ccv.identity.arrays import pair_chunks, unique_sorted
from ccv.identity.blocking import RecordKeys, arrow_text, split_email
from ccv.identity.standardize.names import group_initials
from ccv.identity.threads import parallel_map

__all__ = [
    "BIRTH_DATE",
    "CITY",
    "DEFAULT_COMPARISONS",
    "EMAIL",
    "FIRST_NAME",
    "LAST_NAME",
    "LOYALTY_ID",
    "PHONE",
    "POSTCODE",
    "Comparison",
    "Level",
    "PairContext",
    "all_of",
    "any_of",
    "compare",
    "email_masked_compatible",
    "exact",
    "initial_matches",
    "jaro_winkler",
    "levenshtein",
    "names_swapped",
    "token_set",
]

_SCORERS: dict[str, Callable] = {
    "jaro_winkler": distance.JaroWinkler.normalized_similarity,
    "levenshtein": distance.Levenshtein.distance,
    "token_set": fuzz.token_set_ratio,
}


class PairContext:
    """Column values of the left and right record of every pair, with cached measures.

    Level functions receive this object. ``codes(spec)`` gives per-pair integer codes of the
    left and right values (-1 = missing; equal codes = equal values); ``measure`` gives a
    rapidfuzz score per pair (NaN where a side is missing). Record-level codes come from
    ``keys`` (shared with blocking and other `compare` calls on the same records); a context
    serves one comparison, so its per-pair arrays go when the comparison is done.
    """

    def __init__(self, keys: RecordKeys, left_pos: np.ndarray, right_pos: np.ndarray):
        self.keys = keys
        self.records = keys.records
        self.left_pos = left_pos
        self.right_pos = right_pos
        self.n_pairs = len(left_pos)
        self._cache: dict[tuple, object] = {}
        self.pending: np.ndarray | None = None  # pairs not yet given a level (set by evaluate)

    def _specs(self, left_spec: str, right_spec: str | None) -> tuple[str, ...]:
        right_spec = right_spec or left_spec
        return (left_spec,) if left_spec == right_spec else (left_spec, right_spec)

    def codes(self, left_spec: str, right_spec: str | None = None) -> tuple[np.ndarray, ...]:
        """Per-pair codes (left value, right value) of ``left_spec`` vs ``right_spec``.

        With two specs (e.g. first name vs the other record's last name) both share one code
        space, so equal codes still mean equal values.
        """
        right_spec = right_spec or left_spec
        key = ("codes", left_spec, right_spec)
        if key not in self._cache:
            specs = self._specs(left_spec, right_spec)
            codes, _ = self.keys.codes(*specs)
            n = len(self.records)
            left_codes = codes[:n]
            right_codes = codes[n:] if len(specs) == 2 else codes[:n]
            self._cache[key] = (left_codes[self.left_pos], right_codes[self.right_pos])
        return self._cache[key]

    def uniques(self, left_spec: str, right_spec: str | None = None) -> pa.Array | np.ndarray:
        """The distinct values the codes of ``codes(left_spec, right_spec)`` index."""
        return self.keys.codes(*self._specs(left_spec, right_spec))[1]

    def missing(self, spec: str) -> np.ndarray:
        """True where ``spec`` is missing on either side."""
        left, right = self.codes(spec)
        return (left < 0) | (right < 0)

    def equal(self, left_spec: str, right_spec: str | None = None) -> np.ndarray:
        left, right = self.codes(left_spec, right_spec)
        return (left == right) & (left >= 0)

    def measure(
        self,
        scorer: str,
        left_spec: str,
        right_spec: str | None = None,
        where: np.ndarray | None = None,
    ) -> np.ndarray:
        """``scorer`` ("jaro_winkler", "levenshtein", "token_set") per pair, NaN if missing.

        Computed once per distinct unordered pair of values (the measures are symmetric) and
        only for pairs in ``where`` and in ``self.pending`` (pairs no stricter level took);
        later calls fill in what earlier ones skipped, so every returned value is exact.
        """
        key = ("measure", scorer, left_spec, right_spec or left_spec)
        if key not in self._cache:
            result = np.full(self.n_pairs, np.nan, dtype=np.float32)
            self._cache[key] = (result, np.zeros(self.n_pairs, dtype=bool))
        result, done = self._cache[key]
        wanted = ~done
        if self.pending is not None:
            wanted &= self.pending
        if where is not None:
            wanted &= where
        left, right = self.codes(left_spec, right_spec)
        todo = np.flatnonzero(wanted & (left >= 0) & (right >= 0))
        if len(todo):
            uniques = self.uniques(left_spec, right_spec)
            lo = np.minimum(left[todo], right[todo]).astype(np.int64)
            hi = np.maximum(left[todo], right[todo])
            pair_codes, distinct = pd.factorize(lo * len(uniques) + hi)
            a, b = np.divmod(distinct, len(uniques))
            scores = np.empty(len(distinct), dtype=np.float32)
            # in slices: the values go to rapidfuzz as Python strings (~60 bytes each), and a
            # million-customer night has ~10M distinct value pairs per measure
            for start in range(0, len(distinct), SCORE_SLICE):
                part = slice(start, start + SCORE_SLICE)
                scores[part] = process.cpdist(
                    python_values(uniques, a[part]),
                    python_values(uniques, b[part]),
                    scorer=_SCORERS[scorer],
                    dtype=np.float32 if scorer != "levenshtein" else np.int32,
                    workers=-1,
                )
            result[todo] = scores[pair_codes]
        done |= wanted
        return result


SCORE_SLICE = 1_000_000
"""Distinct value pairs scored by one rapidfuzz call (`PairContext.measure`)."""


def python_values(uniques: pa.Array | np.ndarray, positions: np.ndarray) -> list:
    """``uniques[positions]`` as Python objects (what rapidfuzz and numpy strings take): only
    the values asked for are converted, not all of a column's distinct values."""
    if isinstance(uniques, pa.Array):
        return uniques.take(pa.array(positions, type=pa.int64())).to_pylist()
    return uniques[positions].tolist()


def arrow_values(uniques: pa.Array | np.ndarray) -> pa.Array:
    """Distinct values as an Arrow array (they already are one for Arrow-backed columns)."""
    return uniques if isinstance(uniques, pa.Array) else pa.array(uniques.tolist())


@dataclass(frozen=True)
class Level:
    """One agreement level: a chart/explanation label and a vectorised condition.

    ``condition(ctx)`` returns a boolean array over all pairs (see `PairContext`). ``kind`` is
    ``"exact"`` for an exact-match level (term-frequency adjustment applies to it), else "".
    """

    label: str
    condition: Callable[[PairContext], np.ndarray] = field(compare=False)
    kind: str = ""


def exact(spec: str, label: str | None = None) -> Level:
    """Values equal (``spec`` a column or key expression)."""
    return Level(label or f"exact {spec}", lambda ctx: ctx.equal(spec), kind="exact")


def jaro_winkler(spec: str, threshold: float) -> Level:
    return Level(
        f"Jaro-Winkler ≥ {threshold:g}",
        lambda ctx: ctx.measure("jaro_winkler", spec) >= threshold,
    )


def levenshtein(spec: str, max_distance: int, label: str | None = None) -> Level:
    return Level(
        label or f"Levenshtein ≤ {max_distance}",
        lambda ctx: ctx.measure("levenshtein", spec) <= max_distance,
    )


def token_set(spec: str, threshold: float) -> Level:
    """rapidfuzz ``fuzz.token_set_ratio`` (0-100) at least ``threshold``: word order ignored."""
    return Level(
        f"token-set ratio ≥ {threshold:g}",
        lambda ctx: ctx.measure("token_set", spec) >= threshold,
    )


def any_of(label: str, *levels: Level) -> Level:
    """A level that holds when any of ``levels`` holds."""

    def condition(ctx: PairContext) -> np.ndarray:
        out = np.zeros(ctx.n_pairs, dtype=bool)
        for level in levels:
            out |= level.condition(ctx)
        return out

    return Level(label, condition)


def all_of(label: str, *levels: Level) -> Level:
    """A level that holds when every one of ``levels`` holds."""

    def condition(ctx: PairContext) -> np.ndarray:
        out = np.ones(ctx.n_pairs, dtype=bool)
        for level in levels:
            out &= level.condition(ctx)
        return out

    return Level(label, condition)


TYPO_CROSSING = 0.8
"""`names_swapped`: the Jaro-Winkler a crossing needs when the other crossing is exact."""


def names_swapped(
    first: str, last: str, threshold: float = 0.9, first_key: str | None = None
) -> Level:
    """First name ≈ the other's last name and last name ≈ the other's first (Jaro-Winkler).

    Why: forms with one "name" box, and exports with the columns the wrong way round, give
    "Smith John" for "John Smith". With `first_key` (the nickname-group column) the first name
    standing in the last-name column may also be a nickname or an initial of the other's:
    "White Tom" / "Thomas White", "Campbell Margaret" / "Maggie Campbell", "W Amelia" /
    "Amelia Williams" (the initial of the surname in the first-name box). When one crossing
    is exact, the other needs only Jaro-Winkler ≥ `TYPO_CROSSING`: "Walker Iska" / "Isla
    Walker" (held-out 200k: hard F1 0.8268 -> 0.8282, medium 0.9572 -> 0.9575, precision
    unchanged).
    """

    def condition(ctx: PairContext) -> np.ndarray:
        first_last_jw = ctx.measure("jaro_winkler", first, last)
        last_first_jw = ctx.measure("jaro_winkler", last, first)
        first_last, last_first = first_last_jw >= threshold, last_first_jw >= threshold
        swapped = first_last & last_first
        # one crossing exact, the other with a typo ("walker iska" / "isla walker")
        swapped |= ctx.equal(first, last) & (last_first_jw >= TYPO_CROSSING)
        swapped |= ctx.equal(last, first) & (first_last_jw >= TYPO_CROSSING)
        if first_key is not None:
            nickname = f"nickname({last})"
            swapped |= first_last & ctx.equal(nickname, first_key)
            swapped |= last_first & ctx.equal(first_key, nickname)
            initial = f"first({last})"
            swapped |= last_first & ctx.equal(first, initial)
            swapped |= first_last & ctx.equal(initial, first)
        return swapped

    label = f"names swapped (Jaro-Winkler ≥ {threshold:g}, or one exact and one ≥ {TYPO_CROSSING:g}"
    return Level(label + ("; or a nickname or initial)" if first_key else ")"), condition)


def initial_matches(spec: str, key: str | None = None) -> Level:
    """One side is a single letter equal to the other's first letter ("j" vs "john") — or,
    with `key` (the nickname-group column), to the first letter of any name in the other's
    group ("m" vs "peggy", whose group is "margaret"; "b" vs "rebecca", whose group holds
    "becky": `names.group_initials`).

    Why: forms and tills often keep only the initial; Jaro-Winkler of "j" vs "john" is 0.78.
    And the initial is of the formal name while another source has the nickname: without the
    group, "m" and "peggy" read as different first names, and with a shared e-mail and no birth
    date the household guard keeps the two records apart.
    """

    def condition(ctx: PairContext) -> np.ndarray:
        left, right = ctx.codes(spec)
        text = arrow_values(ctx.uniques(spec))
        # per distinct value whether it is a single letter; the appended entry serves code -1
        single = pc.fill_null(pc.equal(pc.utf8_length(text), 1), False)
        single = np.append(single.to_numpy(zero_copy_only=False), False)
        single_left, single_right = single[left], single[right]
        initial = f"first({spec})"
        same = (single_left | single_right) & ctx.equal(initial)
        if key is not None:
            # the letter (0 = "a" .. 25, else -1) of each distinct single-letter value (few)
            letter = np.full(len(single), -1, dtype=np.int64)
            letters = np.flatnonzero(single)
            for at, c in zip(letters, text.take(letters).to_pylist(), strict=True):
                letter[at] = ord(c) - ord("a") if "a" <= c <= "z" else -1
            key_left, key_right = ctx.codes(key)
            keys = arrow_values(ctx.uniques(key))
            # per pair with an initial on one side: is it an initial of the other's group?
            for side, other in ((left, key_right), (right, key_left)):
                rows = np.flatnonzero((letter[side] >= 0) & (other >= 0))
                if not len(rows):
                    continue
                needed, at = np.unique(other[rows], return_inverse=True)
                masks = group_initials(keys.take(needed))[at]
                same[rows] |= ((masks >> letter[side][rows]) & 1).astype(bool)
        return same

    label = "initial matches" if key is None else "initial matches (a name of its nickname group)"
    return Level(label, condition)


def email_masked_compatible(email: str = "std_email") -> Level:
    """One address is masked ("rob***@x.com" or "r***t@x.com") and fits the other one.

    Same domain, the other local part starts with the visible prefix (at least one character)
    and ends with the visible suffix; both masked: the visible prefixes agree as far as the
    shorter goes. Evaluated only on pairs with a "*" (rare), vectorised with ``np.strings``.
    """

    def condition(ctx: PairContext) -> np.ndarray:
        out = np.zeros(ctx.n_pairs, dtype=bool)
        left, right = ctx.codes(email)
        uniques = ctx.uniques(email)
        masked_value = pc.fill_null(pc.match_substring(arrow_values(uniques), "*"), False)
        masked_value = np.append(masked_value.to_numpy(zero_copy_only=False), False)
        idx = np.flatnonzero(
            (left >= 0) & (right >= 0) & (masked_value[left] | masked_value[right])
        )
        if not len(idx):
            return out
        dtype = np.dtypes.StringDType()
        at, star = np.array("@", dtype=dtype), np.array("*", dtype=dtype)
        a = np.asarray(python_values(uniques, left[idx]), dtype=dtype)
        b = np.asarray(python_values(uniques, right[idx]), dtype=dtype)
        a_local, _, a_domain = (np.asarray(x) for x in np.strings.rpartition(a, at))
        b_local, _, b_domain = (np.asarray(x) for x in np.strings.rpartition(b, at))
        a_masked = np.strings.find(a_local, star) >= 0
        # put the masked one first
        masked = np.where(a_masked, a_local, b_local)
        other = np.where(a_masked, b_local, a_local)
        prefix = np.asarray(np.strings.partition(masked, star)[0])
        suffix = np.asarray(np.strings.rpartition(masked, star)[2])
        other_visible = np.asarray(np.strings.partition(other, star)[0])
        both_masked = np.strings.find(other, star) >= 0
        shorter = np.minimum(np.strings.str_len(prefix), np.strings.str_len(other_visible))
        prefix_agree = np.where(
            both_masked,
            np.strings.slice(prefix, shorter) == np.strings.slice(other_visible, shorter),
            np.strings.startswith(other, prefix) & np.strings.endswith(other, suffix),
        )
        ok = (a_domain == b_domain) & (np.strings.str_len(prefix) >= 1) & prefix_agree
        out[idx] = ok
        return out

    return Level("masked e-mail fits", condition)


def _letters(arr: pa.Array) -> pa.Array:
    return pc.fill_null(pc.replace_substring_regex(arr, r"[^a-z]", ""), "")


def name_built_locals(records: pd.DataFrame, email: str, first: str, last: str) -> np.ndarray:
    """Per record: is the e-mail local part only the record's own name?

    "georgeyoung", "george.young", "young_george", "gyoung", "youngg" for George Young (letters
    only, so "george.young84" counts too); NA e-mails or names give False.
    """
    local = _letters(split_email(arrow_text(records[email]))[0])
    f, last_ = _letters(arrow_text(records[first])), _letters(arrow_text(records[last]))
    f1, l1 = pc.utf8_slice_codeunits(f, 0, 1), pc.utf8_slice_codeunits(last_, 0, 1)
    built = pc.equal(local, "")  # False wherever there is a local part
    sep = pa.scalar("", pa.large_string())
    for a, b in ((f, last_), (last_, f), (f1, last_), (last_, f1), (f, l1)):
        built = pc.or_(built, pc.equal(local, pc.binary_join_element_wise(a, b, sep)))
    has_both = pc.and_(pc.greater(pc.utf8_length(f), 0), pc.greater(pc.utf8_length(last_), 0))
    usable = pc.and_(has_both, pc.greater(pc.utf8_length(local), 0))
    return pc.fill_null(pc.and_(built, usable), False).to_numpy(zero_copy_only=False)


def name_built_local_elsewhere(
    email: str = "std_email_key", first: str = "std_first_name", last: str = "std_last_name"
) -> Level:
    """Two addresses whose local part is just a person's name and that agree only as far as
    two namesakes' addresses would: the same local part on another domain
    ("georgeyoung@outlook.com" / "georgeyoung@yahoo.co.uk"), or on the same domain local parts
    that differ only in separators ("susan.taylor@live.co.uk" / "susantaylor@live.co.uk").
    Domains are the match key's, so a misspelt provider domain ("gmial.com") or googlemail.com
    is the provider's own domain, not another one.

    Why: addresses are built from names, so namesakes share such local parts; once the names
    are compared, this agreement says little more, and counting it as independent evidence
    scored namesakes as matches (held-out benchmark, 200k records, equal names: 8 % of the
    pairs with such a local part on another domain and 6 % of those differing only in
    separators were one person, while 94 % of same-domain pairs with a typo in the letters
    were). A typo, or the same mailbox, is still evidence.
    """

    def condition(ctx: PairContext) -> np.ndarray:
        if first not in ctx.records or last not in ctx.records:
            return np.zeros(ctx.n_pairs, dtype=bool)  # no names: no local part is built of one
        same_local = ctx.equal(f"email_local({email})")
        # the key's domain: a misspelt provider domain (gmial.com) or googlemail.com is the
        # same domain as the provider's, not "another domain"
        same_domain = ctx.equal(f"email_domain({email})")
        out = same_local & ~same_domain
        # on one domain, local parts that differ only in separators
        out |= same_domain & ~same_local & ctx.equal(f"local_alnum({email})")
        # name-built local parts, computed for the records of the pairs that still qualify
        hits = np.flatnonzero(out)
        records = unique_sorted(np.concatenate([ctx.left_pos[hits], ctx.right_pos[hits]]))
        built = np.zeros(len(ctx.records), dtype=bool)
        built[records] = name_built_locals(ctx.records.iloc[records], email, first, last)
        out[hits] = built[ctx.left_pos[hits]] | built[ctx.right_pos[hits]]
        return out

    return Level("name-built local parts, alike as namesakes' are", condition)


@dataclass(frozen=True)
class Comparison:
    """A named ordered list of levels (strictest first) for one attribute.

    ``null_when``: columns whose absence on either side makes the pair level -1 (no evidence).
    ``null_if``: levels that also make the pair -1, for evidence another comparison already
    counts (swapped names are scored once, by the first-name comparison).
    ``tf_column``: when set, `partitions.term_frequencies` adds ``<name>_tf`` (the relative
    frequency of the value among records) for pairs at an ``exact`` level, for term-frequency
    adjustment in scoring.
    """

    name: str
    levels: tuple[Level, ...]
    null_when: tuple[str, ...]
    tf_column: str | None = None
    null_if: tuple[Level, ...] = ()

    @property
    def level_values(self) -> list[int]:
        """All level indices, -1 (null), 0 (else), 1..k."""
        return [-1, 0, *range(1, len(self.levels) + 1)]

    def label(self, value: int) -> str:
        """Label of a level index: "null", "else" or the level's own label."""
        if value == -1:
            return "null"
        if value == 0:
            return "else"
        return self.levels[len(self.levels) - value].label

    def labels(self) -> dict[int, str]:
        return {v: self.label(v) for v in self.level_values}

    def exact_level(self) -> int | None:
        """Index of the strictest ``exact`` level (the one TF adjustment applies to)."""
        for position, level in enumerate(self.levels):
            if level.kind == "exact":
                return len(self.levels) - position
        return None

    def evaluate(self, ctx: PairContext) -> np.ndarray:
        out = np.zeros(ctx.n_pairs, dtype=np.int8)
        assigned = np.zeros(ctx.n_pairs, dtype=bool)
        for spec in self.null_when:
            assigned |= ctx.missing(spec)
        for level in self.null_if:
            ctx.pending = ~assigned
            assigned |= np.asarray(level.condition(ctx), dtype=bool)
        out[assigned] = -1
        for position, level in enumerate(self.levels):
            ctx.pending = ~assigned
            hit = np.asarray(level.condition(ctx), dtype=bool) & ~assigned
            out[hit] = len(self.levels) - position
            assigned |= hit
        ctx.pending = None
        return out


FIRST_NAME = Comparison(
    "first_name",
    (
        exact("std_first_name", "exact"),
        names_swapped("std_first_name", "std_last_name", first_key="std_first_name_key"),
        exact("std_first_name_key", "same nickname group"),
        any_of(
            "Jaro-Winkler ≥ 0.92, of the names or of their nickname groups",
            jaro_winkler("std_first_name", 0.92),
            jaro_winkler("std_first_name_key", 0.92),
        ),
        jaro_winkler("std_first_name", 0.80),
        initial_matches("std_first_name", key="std_first_name_key"),
    ),
    null_when=("std_first_name",),
    tf_column="std_first_name",
)
"""6 exact, 5 names swapped, 4 nickname (bob/robert), 3 JW ≥ 0.92 of the names or of their
nickname groups (jon/john; a misspelt formal name against its nickname: "rebcca" / "becky",
whose group is "rebecca"), 2 JW ≥ 0.80, 1 initial only ("j" / "john", "m" / "peggy")."""

LAST_NAME = Comparison(
    "last_name",
    (
        exact("std_last_name", "exact"),
        token_set("std_last_name", 100),
        jaro_winkler("std_last_name", 0.92),
        jaro_winkler("std_last_name", 0.80),
    ),
    null_when=("std_last_name",),
    tf_column="std_last_name",
    null_if=(names_swapped("std_first_name", "std_last_name", first_key="std_first_name_key"),),
)
"""4 exact, 3 token-set ratio 100 (the words of one are all in the other: "smith jones" vs
"jones", or a title left in by name splitting: "mrs bell" vs "bell"), 2 JW ≥ 0.92,
1 JW ≥ 0.80. A swapped-names pair is null here (-1): the swap is scored once, by
`FIRST_NAME` (counting it in both overstated it by ~11 bits in tests)."""

EMAIL = Comparison(
    "email",
    (
        exact("std_email", "exact"),
        exact("std_email_key", "same match key (gmail dots, +tag)"),
        any_of(
            "same local part, or masked e-mail fits",
            exact("email_local(std_email_key)"),
            email_masked_compatible("std_email"),
        ),
        Level(
            "same domain and digits, local part Levenshtein ≤ 2",
            lambda ctx: (
                ctx.measure(
                    "levenshtein",
                    "email_local(std_email)",
                    where=ctx.equal("email_domain(std_email)")
                    & ctx.equal("digits(email_local(std_email))"),
                )
                <= 2
            ),
        ),
    ),
    null_when=("std_email",),
    tf_column="std_email",
    null_if=(name_built_local_elsewhere(),),
)
"""4 exact, 3 same match key, 2 same local part / masked fits, 1 same domain + local lev ≤ 2
with the same digits: "james.smith84" vs "james.smith" differ only in digits, the mark of two
namesakes (addresses are built from names), not of a typo. Null when the only agreement is a
name-built local parts agree only as namesakes' would (`name_built_local_elsewhere`)."""

PHONE = Comparison(
    "phone",
    (
        exact("std_phone", "exact"),
        any_of(
            "Levenshtein ≤ 1 or last 8 digits equal",
            levenshtein("std_phone", 1),
            exact("last_digits(std_phone)"),
        ),
    ),
    null_when=("std_phone",),
    tf_column="std_phone",
)

BIRTH_DATE = Comparison(
    "birth_date",
    (
        exact("std_birth_date", "exact"),
        Level(
            "day/month swapped",
            lambda ctx: ctx.equal("date_unordered(std_birth_date)"),
        ),
        levenshtein("iso(std_birth_date)", 1, "Levenshtein ≤ 1 on ISO date"),
        Level(
            "same day and month (year mistyped)",
            lambda ctx: ctx.equal("month_day(std_birth_date)"),
        ),
        Level("same year", lambda ctx: ctx.equal("year(std_birth_date)")),
    ),
    null_when=("std_birth_date",),
    tf_column="std_birth_date",
)

POSTCODE = Comparison(
    "postcode",
    (
        exact("std_postcode", "exact"),
        Level("same outward code", lambda ctx: ctx.equal("outward(std_postcode)")),
    ),
    null_when=("std_postcode",),
    tf_column="std_postcode",
)

CITY = Comparison(
    "city",
    (exact("std_city", "exact"), jaro_winkler("std_city", 0.9)),
    null_when=("std_city",),
    null_if=(Level("same outward code", lambda ctx: ctx.equal("outward(std_postcode)")),),
)
"""2 exact, 1 JW ≥ 0.9. Null when the postcodes share their outward code (the district; equal
postcodes do): a district lies in one post town, so the city adds nothing to it. Counting both
(+15 and +9.5 bits for one postcode; +6.8 and +3.7 for one district) broke the independence
Fellegi–Sunter assumes: households at one address, and namesakes in one district, looked alike."""

LOYALTY_ID = Comparison(
    "loyalty_id",
    (exact("std_loyalty_id", "exact"),),
    null_when=("std_loyalty_id",),
)

DEFAULT_COMPARISONS: tuple[Comparison, ...] = (
    FIRST_NAME,
    LAST_NAME,
    EMAIL,
    PHONE,
    BIRTH_DATE,
    POSTCODE,
    CITY,
    LOYALTY_ID,
)


def compare(
    records: pd.DataFrame,
    pairs: pd.DataFrame,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
    keys: RecordKeys | None = None,
) -> pd.DataFrame:
    """Level of every comparison for every pair.

    Returns ``left``, ``right`` (as in ``pairs``) and one int8 ``<name>_level`` per comparison.
    Term frequencies for scoring are added by `partitions.term_frequencies`, once, over all
    records (a comparison of a subset of the pairs, or of one partition, could not know them).
    ``keys``: the records' `RecordKeys`, to share part codes with blocking and other `compare`
    calls on the same records.

    >>> recs = pd.DataFrame({"record_idx": [0, 1, 2], "std_loyalty_id": ["L1", "L1", None]})
    >>> pairs = pd.DataFrame({"left": [0, 0], "right": [1, 2]})
    >>> compare(recs, pairs, [LOYALTY_ID])["loyalty_id_level"].tolist()  # exact, null
    [1, -1]
    """
    keys = RecordKeys.of(records, keys)
    left = pairs["left"].to_numpy(dtype=np.int64)
    right = pairs["right"].to_numpy(dtype=np.int64)
    left_pos, right_pos = keys.rows(left), keys.rows(right)
    out: dict[str, np.ndarray] = {"left": left, "right": right}
    # a chunk of pairs at a time: a comparison's per-pair working set (~40 bytes a pair per
    # measure, two comparisons side by side) is then bounded by the chunk (`pair_chunks`)
    for chunk in pair_chunks(len(left)):

        def levels(comparison: Comparison, chunk: slice = chunk) -> np.ndarray:
            """One comparison's levels of the chunk's pairs; its working set lives in its own
            context and goes when it returns."""
            return comparison.evaluate(PairContext(keys, left_pos[chunk], right_pos[chunk]))

        # side by side, in comparison order
        for comparison, result in zip(comparisons, parallel_map(levels, comparisons), strict=True):
            column = f"{comparison.name}_level"
            if column not in out:
                out[column] = np.empty(len(left), dtype=result.dtype)
            out[column][chunk] = result
    # copy=False: the columns as computed, not copied into 2-D blocks (pairs run to millions)
    return pd.DataFrame(out, copy=False)
