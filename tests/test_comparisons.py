"""Comparison levels: each default level on small inline pairs, with why the level is right."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ccv.identity.comparisons import (
    BIRTH_DATE,
    CITY,
    DEFAULT_COMPARISONS,
    EMAIL,
    FIRST_NAME,
    LAST_NAME,
    LOYALTY_ID,
    PHONE,
    POSTCODE,
    Comparison,
    compare,
    jaro_winkler,
    token_set,
)
from ccv.identity.partitions import term_frequencies
from ccv.identity.standardize import email_match_key


def levels(comparison: Comparison, column_pairs: dict[str, list[tuple]]) -> list[int]:
    """Level of each (left, right) pair; ``column_pairs`` maps column -> [(left, right), ...]."""
    n = len(next(iter(column_pairs.values())))
    data: dict[str, list] = {"record_idx": list(range(2 * n))}
    for column, pairs in column_pairs.items():
        data[column] = [v for pair in pairs for v in pair]
    records = pd.DataFrame(data)
    for column in records.columns:
        if column == "std_birth_date":
            records[column] = pd.array(records[column], dtype=pd.ArrowDtype(pa.date32()))
        elif column != "record_idx":
            records[column] = records[column].astype("str")
    pairs = pd.DataFrame({"left": np.arange(0, 2 * n, 2), "right": np.arange(1, 2 * n, 2)})
    return compare(records, pairs, [comparison])[f"{comparison.name}_level"].tolist()


def test_level_convention_and_labels():
    assert FIRST_NAME.level_values == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert FIRST_NAME.label(6) == "exact"  # strictest = highest
    assert FIRST_NAME.label(3) == "Jaro-Winkler ≥ 0.92, of the names or of their nickname groups"
    assert FIRST_NAME.label(0) == "else"
    assert FIRST_NAME.label(-1) == "null"
    assert EMAIL.exact_level() == 4
    assert [c.name for c in DEFAULT_COMPARISONS] == [
        "first_name",
        "last_name",
        "email",
        "phone",
        "birth_date",
        "postcode",
        "city",
        "loyalty_id",
    ]


def test_first_name_levels():
    first = [
        ("john", "john"),  # 6 exact
        ("john", "smith"),  # 5 names swapped: see last names below
        ("bob", "robert"),  # 4 same nickname group (key "robert" on both)
        ("jon", "john"),  # 3 Jaro-Winkler 0.93 ≥ 0.92 (keys differ on purpose)
        ("katrina", "katerina"),  # 3 JW 0.97 ≥ 0.92
        ("marie", "maria"),  # 3 JW 0.92: four of five letters, common prefix "mari"
        ("steven", "stephan"),  # 2 JW 0.82: ≥ 0.80 but < 0.92
        ("j", "john"),  # 1 initial only (JW 0.78 < 0.80)
        ("ann", "peter"),  # 0 else
        (None, "ann"),  # -1 null
        ("rebcca", "becky"),  # 3 a misspelt name vs a nickname: groups "rebcca" / "rebecca"
        ("billy", "willliam"),  # 3 the same the other way round
        ("m", "peggy"),  # 1 the initial of peggy's group, margaret
        ("peggy", "m"),  # 1 either side
        ("p", "peggy"),  # 1 the initial of the name itself
        ("l", "peggy"),  # 0 neither
        ("white", "thomas"),  # 5 swapped, the other's nickname in the last-name box: tom
        ("thomas", "white"),  # 5 the same the other way round
        ("w", "amelia"),  # 5 swapped, the surname's initial in the first-name box
        ("white", "john"),  # 0 swapped surname but "tom" is not john's
        ("b", "rebecca"),  # 1 the initial of a name in rebecca's group: becky
        ("becky", "b"),  # 1 either side, whichever name the other side has
        ("t", "eddie"),  # 1 ted, of edward's group
        ("z", "becky"),  # 0 no name of rebecca's group starts with z
        ("walker", "isla"),  # 5 swapped, one crossing exact and the other a typo: iska / isla
        ("walker", "isla"),  # 0 one crossing exact, the other unlike (brown / isla)
    ]
    keys = [
        ("john", "john"),
        ("john", "smith"),
        ("robert", "robert"),
        ("jon", "john"),
        ("katrina", "katerina"),
        ("marie", "maria"),
        ("steven", "stephan"),
        ("j", "john"),
        ("ann", "peter"),
        (None, "ann"),
        ("rebcca", "rebecca"),
        ("william", "willliam"),
        ("m", "margaret"),
        ("margaret", "m"),
        ("p", "margaret"),
        ("l", "margaret"),
        ("white", "thomas"),
        ("thomas", "white"),
        ("w", "amelia"),
        ("white", "john"),
        ("b", "rebecca"),
        ("rebecca", "b"),
        ("t", "edward"),
        ("z", "rebecca"),
        ("walker", "isla"),
        ("walker", "isla"),
    ]
    last = [("lee", "lee")] * 24 + [("iska", "walker"), ("brown", "walker")]
    last[1] = ("smith", "john")
    last[16:20] = [("tom", "white"), ("white", "tom"), ("amelia", "williams"), ("tom", "white")]
    got = levels(
        FIRST_NAME,
        {"std_first_name": first, "std_first_name_key": keys, "std_last_name": last},
    )
    assert got == [6, 5, 4, 3, 3, 3, 2, 1, 0, -1, 3, 3, 1, 1, 1, 0, 5, 5, 5, 0, 1, 1, 1, 0, 5, 0]


def test_last_name_levels_and_swap_counted_once():
    last = [
        ("smith", "smith"),  # 4 exact
        ("smith jones", "jones"),  # 3 token-set 100: compound surname holds the other
        ("mrs bell", "bell"),  # 3 token-set 100: a title the name splitter left in
        ("smith", "smyth"),  # 1 JW 0.89: ≥ 0.80 but < 0.92
        ("johnson", "jonson"),  # 2 JW 0.96 ≥ 0.92 (one letter dropped)
        ("oconnor", "oconner"),  # 2 JW 0.94
        ("smith", "john"),  # -1: the pair is swapped (first names below), scored by first_name
        ("smith", "jones"),  # 0 else: JW 0.0 (no common letters in reach)
        ("smith", None),  # -1 null
        ("tom", "white"),  # -1: swapped with a nickname ("white tom" / "thomas white")
        ("iska", "walker"),  # -1: swapped with a typo ("walker iska" / "isla walker")
    ]
    first = [("ann", "ann")] * 11
    first[6] = ("john", "smith")
    first[9] = ("white", "thomas")
    first[10] = ("walker", "isla")
    keys = [("ann", "ann")] * 11
    keys[6] = ("john", "smith")
    keys[9] = ("white", "thomas")
    keys[10] = ("walker", "isla")
    got = levels(
        LAST_NAME,
        {"std_last_name": last, "std_first_name": first, "std_first_name_key": keys},
    )
    assert got == [4, 3, 3, 1, 2, 2, -1, 0, -1, -1, -1]


def test_email_levels():
    email = [
        ("ann.lee@x.com", "ann.lee@x.com"),  # 4 exact
        ("annlee@gmail.com", "ann.lee+shop@googlemail.com"),  # 3 same match key
        ("ann.lee@x.com", "ann.lee@y.org"),  # 2 same local part, other provider
        ("ann***@x.com", "ann.lee@x.com"),  # 2 masked prefix "ann" fits, same domain
        ("a***e@x.com", "ann.lee@x.com"),  # 2 masked prefix "a" and suffix "e" fit
        ("ann***@x.com", "bob.lee@x.com"),  # 0: the visible prefix does not fit
        ("ann***@x.com", "ann.lee@y.org"),  # 0: masked addresses need the same domain
        ("ann.lee@x.com", "ann.loe@x.com"),  # 1 same domain, Levenshtein 1 on local part
        ("ann.lee@x.com", "ann.loe@y.com"),  # 0 one edit but another domain
        ("ann.lee84@x.com", "ann.lee@x.com"),  # 0 only digits differ: namesakes, not a typo
        ("ann@x.com", None),  # -1 null
    ]
    keys = [
        ("ann.lee@x.com", "ann.lee@x.com"),
        ("annlee@gmail.com", "annlee@gmail.com"),
        ("ann.lee@x.com", "ann.lee@y.org"),
        ("ann***@x.com", "ann.lee@x.com"),
        ("a***e@x.com", "ann.lee@x.com"),
        ("ann***@x.com", "bob.lee@x.com"),
        ("ann***@x.com", "ann.lee@y.org"),
        ("ann.lee@x.com", "ann.loe@x.com"),
        ("ann.lee@x.com", "ann.loe@y.com"),
        ("ann.lee84@x.com", "ann.lee@x.com"),
        ("ann@x.com", None),
    ]
    got = levels(EMAIL, {"std_email": email, "std_email_key": keys})
    assert got == [4, 3, 2, 2, 2, 0, 0, 1, 0, 0, -1]


def test_email_agreement_namesakes_would_share_is_no_evidence():
    """Addresses built from the name agree for two namesakes: null, unless it is a typo."""
    pairs = [
        # (left email, right email, expected level) for two records both named George Young
        ("georgeyoung@outlook.com", "georgeyoung@yahoo.co.uk", -1),  # name-built, other domain
        ("george.young@live.co.uk", "georgeyoung@live.co.uk", -1),  # only separators differ
        ("g.young@live.co.uk", "g_young@live.co.uk", -1),  # initial + surname, separators
        ("george.young@live.co.uk", "george.yuong@live.co.uk", 1),  # a typo in the letters
        ("george.young@live.co.uk", "george.young@live.co.uk", 4),  # the same mailbox
        ("gy1984@outlook.com", "gy1984@yahoo.co.uk", 2),  # a handle, not the name: evidence
        ("georgeyoung84@live.co.uk", "george.young@live.co.uk", 0),  # digits: namesakes
    ]
    emails = [(a, b) for a, b, _ in pairs]
    names = {
        "std_first_name": [("george", "george")] * len(pairs),
        "std_last_name": [("young", "young")] * len(pairs),
    }
    got = levels(EMAIL, {"std_email": emails, "std_email_key": emails, **names})
    assert got == [expected for *_, expected in pairs]


def test_email_misspelt_provider_domain_is_not_another_domain():
    """The address "georgeyoung@gmial.com" is George Young's Gmail address mistyped, not a
    namesake's address on another domain: the match key's domain decides, so the pair keeps
    its evidence (same match key), while a real other provider still says nothing."""
    pairs = [
        ("georgeyoung@gmial.com", "georgeyoung@gmail.com", 3),  # misspelt provider domain
        ("georgeyoung@googlemail.com", "georgeyoung@gmail.com", 3),  # one provider, two names
        ("george.young@grnail.com", "georgeyoung@gmail.com", 3),  # Gmail ignores the dot
        ("georgeyoung@gmail.com", "georgeyoung@mail.com", -1),  # another provider: namesakes
        ("george.young@hotmai1.co.uk", "georgeyoung@hotmail.co.uk", -1),  # only separators
    ]
    emails = [(a, b) for a, b, _ in pairs]
    keys = [tuple(email_match_key(pd.Series(pair))) for pair in emails]  # as standardised
    names = {
        "std_first_name": [("george", "george")] * len(pairs),
        "std_last_name": [("young", "young")] * len(pairs),
    }
    got = levels(EMAIL, {"std_email": emails, "std_email_key": keys, **names})
    assert got == [expected for *_, expected in pairs]


def test_phone_levels():
    phone = [
        ("+447911123456", "+447911123456"),  # 2 exact
        ("+447911123456", "+447911123457"),  # 1 Levenshtein 1 (last digit typo)
        ("+447911123456", "+353911123456"),  # 1 last 8 digits equal (other country code)
        ("+447911123456", "+447911654321"),  # 0 else
        ("+447911123456", None),  # -1 null
    ]
    assert levels(PHONE, {"std_phone": phone}) == [2, 1, 1, 0, -1]


def test_birth_date_levels():
    d = dt.date
    birth = [
        (d(1980, 2, 5), d(1980, 2, 5)),  # 5 exact
        (d(1980, 2, 5), d(1980, 5, 2)),  # 4 day and month swapped
        (d(1980, 2, 5), d(1980, 2, 6)),  # 3 one character of "1980-02-05" differs
        (d(1980, 2, 5), d(1981, 2, 5)),  # 3 "1980" vs "1981": one character
        (d(1984, 2, 5), d(1948, 2, 5)),  # 2 year digits swapped: same day and month
        (d(1980, 2, 5), d(1980, 11, 20)),  # 1 same year only
        (d(1980, 2, 5), d(1975, 7, 30)),  # 0 else
        (d(1980, 2, 5), None),  # -1 null
    ]
    assert levels(BIRTH_DATE, {"std_birth_date": birth}) == [5, 4, 3, 3, 2, 1, 0, -1]


def test_postcode_city_loyalty_levels():
    postcode = [
        ("SW1A 1AA", "SW1A 1AA"),  # 2 exact
        ("SW1A 1AA", "SW1A 2BB"),  # 1 same outward code
        ("SW1A 1AA", "M1 1AE"),  # 0 else
        (None, "M1 1AE"),  # -1
    ]
    assert levels(POSTCODE, {"std_postcode": postcode}) == [2, 1, 0, -1]
    city = [
        ("london", "london"),  # 2 exact
        ("manchester", "manchster"),  # 1 JW 0.96 ≥ 0.9 (dropped letter)
        ("leeds", "london"),  # 0 JW 0.58
        ("leeds", None),  # -1
        ("leeds", "leeds"),  # -1: same postcode below, the city would count it twice
        ("leeds", "leeds"),  # -1: same district (outward code) below: one post town
        ("leeds", "leeds"),  # 2: different districts
    ]
    postcodes = [(None, None), ("M1 1AE", "M2 2AB"), ("LS1 1AA", None), (None, None)]
    postcodes += [("LS1 1AA", "LS1 1AA"), ("LS1 1AA", "LS1 4BB"), ("LS1 1AA", "LS2 1AA")]
    got = levels(CITY, {"std_city": city, "std_postcode": postcodes})
    assert got == [2, 1, 0, -1, -1, -1, 2]
    loyalty = [("L1", "L1"), ("L1", "L2"), (None, "L2")]  # 1 exact, 0 else, -1 null
    assert levels(LOYALTY_ID, {"std_loyalty_id": loyalty}) == [1, 0, -1]


def test_token_set_level_ignores_word_order():
    comparison = Comparison(
        "name", (token_set("full", 100), jaro_winkler("full", 0.9)), null_when=("full",)
    )
    got = levels(comparison, {"full": [("mary ann lee", "lee mary ann"), ("ann", "bob")]})
    assert got == [2, 0]  # same words in another order: token-set ratio 100


def test_compare_output_and_term_frequencies():
    records = pd.DataFrame(
        {
            "record_idx": np.array([10, 11, 12, 13], dtype=np.int64),
            "std_last_name": ["smith", "smith", "smith", "featherstone"],
            "std_first_name": ["ann", "bob", "cy", "di"],  # needed for the swap check
            "std_first_name_key": ["ann", "robert", "cy", "di"],
        }
    )
    pairs = pd.DataFrame({"left": [10, 10, 12], "right": [11, 13, 13]})
    levels = compare(records, pairs, [LAST_NAME])
    assert levels.columns.tolist() == ["left", "right", "last_name_level"]
    assert levels["last_name_level"].dtype == np.int8
    out = term_frequencies(records, levels, comparisons=[LAST_NAME])
    assert out["last_name_tf"].dtype == np.float32
    # smith is 3 of 4 records; tf only on exact-level pairs
    assert out["last_name_tf"].iloc[0] == pytest.approx(0.75)
    assert out["last_name_tf"].iloc[1:].isna().all()


def test_compare_rejects_unknown_record_idx():
    records = pd.DataFrame({"record_idx": [1, 2], "std_city": ["a", "a"], "std_postcode": None})
    with pytest.raises(KeyError):
        compare(records, pd.DataFrame({"left": [1], "right": [3]}), [CITY])


def test_many_pairs_vectorised():
    # 200k pairs over a few distinct names: measures are computed per distinct value pair
    rng = np.random.default_rng(0)
    names = np.array(["jon", "john", "joan", "ann", "anne", "smith"], dtype=object)
    n = 200_000
    records = pd.DataFrame(
        {
            "record_idx": np.arange(2 * n),
            "std_city": pd.array(rng.choice(names, 2 * n), "str"),
            "std_postcode": pd.array([None] * (2 * n), "str"),
        }
    )
    pairs = pd.DataFrame({"left": np.arange(0, 2 * n, 2), "right": np.arange(1, 2 * n, 2)})
    out = compare(records, pairs, [CITY])
    left = records["std_city"].to_numpy()[0::2]
    right = records["std_city"].to_numpy()[1::2]
    assert ((out["city_level"] == 2) == (left == right)).all()


def test_scoring_in_slices_gives_the_same_levels(monkeypatch):
    # distinct value pairs go to rapidfuzz a slice at a time; slices of 7 must change nothing
    from ccv.identity import arrays, comparisons

    rng = np.random.default_rng(1)
    words = np.array(
        ["anna", "ana", "hannah", "jon", "john", "johnny", "smith", "smyth", "schmidt"],
        dtype=object,
    )
    n = 500
    records = pd.DataFrame(
        {
            "record_idx": np.arange(2 * n),
            **{
                column: pd.array(rng.choice(words, 2 * n), "str")
                for column in (
                    "std_first_name",
                    "std_first_name_key",
                    "std_last_name",
                    "std_city",
                )
            },
            "std_postcode": pd.array([None] * (2 * n), "str"),
        }
    )
    pairs = pd.DataFrame({"left": rng.integers(0, 2 * n, n), "right": rng.integers(0, 2 * n, n)})
    whole = compare(records, pairs, [FIRST_NAME, LAST_NAME, CITY])
    monkeypatch.setattr(comparisons, "SCORE_SLICE", 7)
    sliced = compare(records, pairs, [FIRST_NAME, LAST_NAME, CITY])
    pd.testing.assert_frame_equal(whole, sliced)
    assert whole["first_name_level"].nunique() > 2  # fuzzy levels were reached
    # pairs compared a chunk at a time (bounded memory at millions of pairs): the same frame,
    # with a last chunk shorter than the others
    monkeypatch.setattr(arrays, "PAIR_CHUNK", 64)
    chunked = compare(records, pairs, [FIRST_NAME, LAST_NAME, CITY])
    pd.testing.assert_frame_equal(whole, chunked)
    empty = compare(records, pairs.iloc[:0], [FIRST_NAME, CITY])
    assert list(empty.columns) == ["left", "right", "first_name_level", "city_level"]
    assert len(empty) == 0
