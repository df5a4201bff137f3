"""Blocking rules: key expressions, pair generation, caps, dedup across rules, estimates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ccv.identity.blocking import (
    DEFAULT_RULES,
    KEY_FUNCTIONS,
    BlockingRule,
    RecordKeys,
    candidate_pairs,
    estimate_pairs,
    factorize,
    key_values,
    split_email,
)

DATE = pd.ArrowDtype(pa.date32())


def dates(*values):
    return pd.array([None if v is None else dt.date(*v) for v in values], dtype=DATE)


def test_key_expressions():
    r = pd.DataFrame(
        {
            "e": ["rob***@x.com", "robert.smith@x.com", None, "a@y.co.uk"],
            "d": dates((1990, 3, 4), (1990, 4, 3), None, (1991, 1, 2)),
            "pc": ["SW1A 1AA", "SW1A 2BB", "75008", None],
            "f": ["jn", "sm0", None, "jn"],
            "l": ["sm0", "jn", "x", "al"],
        }
    )
    # masked local parts are no handle: NA
    assert key_values(r, "email_local(e)").tolist() == [pd.NA, "robert.smith", pd.NA, "a"]
    # the masked and the full address share their initial and domain
    assert key_values(r, "email_initial(e)").tolist() == ["r@x.com", "r@x.com", pd.NA, "a@y.co.uk"]
    assert key_values(r, "unmasked(e)").tolist()[:2] == [pd.NA, "robert.smith@x.com"]
    # 4 March and 3 April 1990 give one key: day/month swapped
    assert key_values(r, "date_unordered(d)").tolist() == [19900304, 19900304, pd.NA, 19910102]
    assert key_values(r, "year(d)").tolist() == [1990, 1990, pd.NA, 1991]
    assert key_values(r, "iso(d)").tolist()[0] == "1990-03-04"
    # UK outward code; a non-UK code stays whole
    assert key_values(r, "outward(pc)").tolist() == ["SW1A", "SW1A", "75008", pd.NA]
    # first/last swapped give the same unordered pair
    assert key_values(r, "unordered(f, l)").tolist() == ["jn|sm0", "jn|sm0", pd.NA, "al|jn"]
    assert key_values(r, "prefix3(l)").tolist() == ["sm0", "jn", "x", "al"]
    # expressions nest: the digits of the local part
    assert key_values(r, "digits(email_local(e))").tolist() == [pd.NA, "", pd.NA, ""]
    assert key_values(r, "month_day(d)").tolist() == [304, 403, pd.NA, 102]


def test_split_email_at_the_first_at_sign():
    arr = pa.array(["a@b@c", "x@", "@x", "noat", None, "j.smith@x.com"], pa.large_string())
    local, domain = split_email(arr)
    assert local.to_pylist() == ["a", "x", "", None, None, "j.smith"]
    assert domain.to_pylist() == ["b@c", "", "x", None, None, "x.com"]


def _same_keys(codes_a, values_a, codes_b, values_b) -> bool:
    """Two encodings give every record the same key value (codes may be numbered apart)."""

    def per_record(codes, values):
        values = values.to_pylist() if isinstance(values, pa.Array) else list(values)
        return [None if c < 0 else values[c] for c in codes]

    return per_record(codes_a, values_a) == per_record(codes_b, values_b)


def test_record_keys_equal_row_by_row_keys():
    """`RecordKeys` evaluates key functions once per distinct input; every record must still
    get the key that evaluating the expression row by row gives, for every key function, nested
    expressions and two-argument ones, with missing values, masked e-mails and repeated values."""
    n = 60
    rng = np.random.default_rng(7)
    emails = ["rob***@x.com", "robert.smith@x.com", "r.smith84@y.org", "a@b@c", None, "x@"]
    records = pd.DataFrame(
        {
            "e": pd.array(rng.choice(np.array(emails, dtype=object), n), dtype="str"),
            "d": dates(
                *[None if i % 7 == 0 else (1980 + i % 3, 1 + i % 12, 1 + i % 5) for i in range(n)]
            ),
            "pc": pd.array(
                rng.choice(np.array(["SW1A 1AA", "SW1A 2BB", "75008", None], dtype=object), n),
                dtype="str",
            ),
            "f": pd.array(rng.choice(np.array(["jn", "sm0", None], dtype=object), n), dtype="str"),
            "l": pd.array(
                rng.choice(np.array(["sm0", "jn", "al", None], dtype=object), n), dtype="str"
            ),
            "ph": pd.array(
                rng.choice(np.array(["+447911123456", "07911 123456", None], dtype=object), n),
                dtype="str",
            ),
        }
    )
    column_of = {"year": "d", "date_unordered": "d", "iso": "d", "month_day": "d", "outward": "pc"}
    column_of |= {"last_digits": "ph", "prefix3": "l", "first": "f"}
    parts = [f"{fn}({column_of.get(fn, 'e')})" for fn in KEY_FUNCTIONS if fn != "unordered"]
    parts += ["unordered(f, l)", "digits(email_local(e))", "local_alnum(unmasked(e))", "e"]
    keys = RecordKeys(records)
    for part in parts:
        codes, values = keys.codes(part)
        assert codes.dtype == np.int32
        expected_codes, expected_values = factorize(key_values(records, part))
        assert _same_keys(codes, values, expected_codes, expected_values), part
    # two parts in one code space: equal codes mean equal values across the parts
    codes, values = keys.codes("f", "l")
    assert len(codes) == 2 * n
    assert _same_keys(codes, values, *factorize(pd.concat([records["f"], records["l"]])))


def test_record_keys_belong_to_one_frame():
    records = pd.DataFrame({"record_idx": [5, 9], "std_phone": ["+44791", "+44791"]})
    keys = RecordKeys(records)
    assert RecordKeys.of(records, keys) is keys
    with pytest.raises(ValueError, match="another records frame"):
        RecordKeys.of(records.copy(), keys)
    assert keys.rows(np.array([9, 5])).tolist() == [1, 0]
    with pytest.raises(KeyError):
        keys.rows(np.array([7]))
    # blocking with shared keys gives the pairs it gives alone
    rules = [BlockingRule("phone", ("std_phone",))]
    shared, _ = candidate_pairs(records, rules, keys=keys)
    alone, _ = candidate_pairs(records, rules)
    pd.testing.assert_frame_equal(shared, alone)


def test_rule_validation():
    with pytest.raises(ValueError, match="unknown key function"):
        BlockingRule("bad", ("soundex(std_last_name)",))
    with pytest.raises(ValueError, match="no key parts"):
        BlockingRule("empty", ())
    with pytest.raises(KeyError, match="missing column"):
        candidate_pairs(pd.DataFrame({"record_idx": [1]}), [BlockingRule("x", ("nope",))])


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "record_idx": np.array([40, 10, 30, 20, 50, 60], dtype=np.int64),
            "std_phone": ["+1", "+1", "+1", None, "+2", "+2"],
            "std_city": ["a", "b", "a", "a", None, "b"],
            "std_email": ["x@y.com", None, None, None, "x@y.com", None],
        }
    )


def test_pairs_ordered_deduplicated_with_rules():
    rules = [BlockingRule("phone", ("std_phone",)), BlockingRule("city", ("std_city",))]
    pairs, oversized = candidate_pairs(frame(), rules)
    got = {(a, b): r for a, b, r in pairs[["left", "right", "rules"]].astype(str).values}
    # phone +1: {40, 10, 30}; +2: {50, 60}; city a: {40, 30, 20}; b: {10, 60}
    assert got == {
        ("10", "30"): "phone",
        ("10", "40"): "phone",
        ("30", "40"): "phone+city",  # found by both rules, listed once with both names
        ("50", "60"): "phone",
        ("20", "30"): "city",
        ("20", "40"): "city",
        ("10", "60"): "city",
    }
    assert (pairs["left"] < pairs["right"]).all()
    assert pairs[["left", "right"]].duplicated().sum() == 0
    assert list(pairs.sort_values(["left", "right"]).index) == list(pairs.index)
    assert oversized.empty


def test_null_keys_never_block():
    rules = [BlockingRule("city_email", ("std_city", "std_email"))]
    pairs, _ = candidate_pairs(frame(), rules)
    # 40 and 50 share the e-mail, but 50 has no city: a key with a null part is no key
    assert pairs.empty


def test_oversized_block_reported_not_exploded():
    rules = [BlockingRule("phone", ("std_phone",)), BlockingRule("city", ("std_city",))]
    pairs, oversized = candidate_pairs(frame(), rules, max_block_size=2)
    # phone +1 (3 records) and city a (3 records) exceed the cap of 2: no pairs from them
    assert oversized.sort_values("key").to_dict("records") == [
        {"rule": "phone", "key": "+1", "size": 3},
        {"rule": "city", "key": "a", "size": 3},
    ]
    got = set(map(tuple, pairs[["left", "right"]].values.tolist()))
    assert got == {(50, 60), (10, 60)}


def test_rule_own_cap_overrides_default():
    rules = [BlockingRule("phone", ("std_phone",), max_block_size=2)]
    pairs, oversized = candidate_pairs(frame(), rules, max_block_size=100)
    assert oversized["key"].tolist() == ["+1"]
    assert pairs[["left", "right"]].values.tolist() == [[50, 60]]


def test_estimate_equals_generated_count_under_cap():
    rng = np.random.default_rng(3)
    n = 5000
    records = pd.DataFrame(
        {
            "record_idx": rng.permutation(n).astype(np.int64) * 7,
            "std_last_phonetic": rng.choice([f"K{i}" for i in range(400)], n),
            "std_city": rng.choice(["a", "b", "c", None], n),
            "std_phone": rng.choice([f"+{i}" for i in range(3000)], n),
        }
    )
    rules = [
        BlockingRule("surname_city", ("std_last_phonetic", "std_city")),
        BlockingRule("phone", ("std_phone",)),
        BlockingRule("city", ("std_city",)),  # ~1250-record blocks: over the cap
    ]
    estimate = estimate_pairs(records, rules, max_block_size=50).set_index("rule")
    pairs, oversized = candidate_pairs(records, rules, max_block_size=50)
    names = pairs["rules"].astype(str).str.split("+").explode()
    for rule in rules:
        assert estimate.loc[rule.name, "pairs_capped"] == (names == rule.name).sum()
    # the city rule is entirely over the cap: estimated in full, generated not at all
    assert estimate.loc["city", "pairs_capped"] == 0
    sizes = records["std_city"].value_counts()
    assert estimate.loc["city", "pairs"] == int((sizes * (sizes - 1) // 2).sum())
    assert estimate.loc["city", "largest_block"] == sizes.max()
    assert estimate.loc["city", "largest_key"] == sizes.idxmax()
    assert set(oversized.loc[oversized["rule"] == "city", "key"]) == {"a", "b", "c"}


def test_default_rules_catch_dirty_duplicates():
    # Two records of one person whose name is swapped and birth date has day/month swapped,
    # with a masked e-mail: no identifier is shared exactly, yet the broad rules find them.
    records = pd.DataFrame(
        {
            "record_idx": np.array([1, 2, 3], dtype=np.int64),
            "std_first_name": ["robert", "smith", "ann"],
            "std_last_name": ["smith", "robert", "lee"],
            "std_first_name_key": ["robert", "smith", "ann"],
            "std_first_phonetic": ["RBRT", "SM0", "AN"],
            "std_last_phonetic": ["SM0", "RBRT", "L"],
            "std_email": ["robert.smith@x.com", "rob***@x.com", None],
            "std_email_key": ["robert.smith@x.com", "rob***@x.com", None],
            "std_phone": [None, None, None],
            "std_postcode": ["SW1A 1AA", None, "M1 1AE"],
            "std_city": [None, None, None],
            "std_loyalty_id": [None, None, None],
            "std_birth_date": dates((1980, 2, 5), (1980, 5, 2), (1980, 2, 5)),
        }
    )
    pairs, _ = candidate_pairs(records, DEFAULT_RULES)
    found = pairs.set_index(["left", "right"])["rules"].astype(str)
    assert "swapped_names_year" in found.loc[(1, 2)]
    assert (1, 3) not in found.index  # same birth date only: no rule pairs strangers
