"""Tests for ccv.identity.standardize: small inline examples, each with why the answer is right."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest

from ccv.identity import standardize as std
from ccv.identity.standardize import (
    PLACEHOLDERS,
    blank_placeholders,
    clean_text,
    email_match_key,
    fold,
    nickname_key,
    normalize_email,
    normalize_loyalty_id,
    normalize_phone,
    normalize_postcode,
    parse_date,
    phonetic_key,
    split_full_name,
    standardize_customers,
)
from ccv.identity.standardize.identifiers import _phone_fast, _phone_slow


def values(s: pd.Series) -> list:
    """Series as a list with every missing value as None, so assertions read plainly."""
    return [None if pd.isna(v) else v for v in s.tolist()]


# --- clean_text / fold ------------------------------------------------------------------------


def test_clean_text_strips_zero_width_and_controls_and_collapses_space():
    s = pd.Series(
        ["\ufeffJo\u200bhn\u200d", "Ann\tMarie\r\n", "  a   b  ", "\u2060\u200c", "", None]
    )
    # BOM/ZWSP/ZWJ/word-joiner are invisible junk; tabs and newlines are whitespace -> one space;
    # a value that is only junk or blank is missing, never "".
    assert values(clean_text(s)) == ["John", "Ann Marie", "a b", None, None, None]


def test_clean_text_nfkc_folds_fullwidth_but_keeps_case_and_accents():
    # NFKC maps fullwidth "Ｓｍｉｔｈ" to ASCII and the "ﬁ" ligature to "fi"; clean_text
    # does not casefold or strip accents (that is fold's job).
    s = pd.Series(["Ｓｍｉｔｈ", "ﬁnn", "Zoë"])
    assert values(clean_text(s)) == ["Smith", "finn", "Zoë"]


def test_clean_text_keeps_index_and_name():
    s = pd.Series([" a ", "b"], index=[10, 20], name="city")
    out = clean_text(s)
    assert out.index.tolist() == [10, 20] and out.name == "city"


def test_fold_transliterates_casefolds_and_reduces_punctuation():
    s = pd.Series(["Zoë O'Brien", "SMITH-JONES", "Łódź", "Müller", "Ｊ.Ｒ.", "--", "  "])
    # anyascii: ë->e, Ł->L, ó->o, ü->u; apostrophes/dots dropped; hyphen -> space;
    # a value with nothing left is NA.
    assert values(fold(s)) == ["zoe obrien", "smith jones", "lodz", "muller", "jr", None, None]


def test_fold_makes_differently_dirty_spellings_equal():
    # The point of folding: all three are the same surname.
    s = pd.Series(["O'Brien", "OBRIEN", " o\u200bbrien "])
    assert fold(s).nunique() == 1


# --- placeholders -----------------------------------------------------------------------------


def test_blank_placeholders_case_insensitive_and_punctuation_variants():
    s = pd.Series(["N/A", "N. A.", "NULL", "Unknown", "Not-Given", "TEST@test.com", "—", "Ann"])
    # All but "Ann" are in PLACEHOLDERS after casefolding ("N. A." and "Not-Given" once
    # spaces, dots and hyphens are ignored); an em dash has no letters or digits.
    assert values(blank_placeholders(s)) == [None] * 7 + ["Ann"]


def test_blank_placeholders_all_same_digit_phone():
    s = pd.Series(["0000 000000", "(999) 999-9999", "1111111", "07400 123456", "11111"])
    # 6+ identical digits in a phone-shaped value is filler; a real number and a short code
    # (5 digits, could be a house number) are kept.
    assert values(blank_placeholders(s)) == [None, None, None, "07400 123456", "11111"]


def test_blank_placeholders_can_be_customised_or_disabled():
    s = pd.Series(["Na", "tbd", "N/A"])
    # "na" is a real surname: removing "na" and "n.a." (its dotted spelling) keeps it while
    # "n/a" still blanks "N/A"; a custom set can add "tbd".
    custom = (PLACEHOLDERS - {"na", "n.a."}) | {"tbd"}
    assert values(blank_placeholders(s, custom)) == ["Na", None, None]
    assert values(normalize_email(pd.Series(["test@test.com"]), placeholders=None)) == [
        "test@test.com"
    ]


# --- split_full_name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "first", "last"),
    [
        ("John Smith", "John", "Smith"),  # plain "First Last"
        ("SMITH, John", "John", "SMITH"),  # "LAST, First": order flips, raw case kept
        ("Smith, John Paul", "John", "Smith"),  # middle name after the comma dropped
        ("Mr John Smith", "John", "Smith"),  # title removed
        ("Dr. Jane van der Berg", "Jane", "van der Berg"),  # particles stay with surname
        ("Maria da Silva", "Maria", "da Silva"),
        ("Mrs. Mary Anne St John", "Mary", "St John"),  # "St" particle; middle "Anne" dropped
        ("John Paul Jones III", "John", "Jones"),  # suffix removed, middle dropped
        ("John Smith, Jr.", "John", "Smith"),  # suffix after a comma is not a surname
        ("Prof Sir Ian Wilmut PhD", "Ian", "Wilmut"),  # several titles and a suffix
        ("Jane Di Maria", "Jane", "Di Maria"),
        ("Mr Smith", None, "Smith"),  # after a title, a lone word is the surname
        ("Cher", "Cher", None),  # a lone word is a given name
        ("Dr", None, None),  # only a title: nothing left
    ],
)
def test_split_full_name(full, first, last):
    out = split_full_name(pd.Series([full]))
    assert values(out["first_name"]) == [first]
    assert values(out["last_name"]) == [last]


def test_split_full_name_aligns_and_handles_missing():
    out = split_full_name(pd.Series([None, "  ", "Ann Lee"], index=[5, 6, 7]))
    assert out.columns.tolist() == ["first_name", "last_name"]
    assert out.index.tolist() == [5, 6, 7]
    assert values(out["first_name"]) == [None, None, "Ann"]


# --- nickname_key / phonetic_key --------------------------------------------------------------


def key_of(*names: str) -> list[str]:
    return values(nickname_key(pd.Series(list(names))))


def test_nickname_groups_share_a_key():
    # Pinned groups: all spellings of one formal name get the same key.
    assert set(key_of("bob", "robert", "rob", "bobby")) == {"robert"}
    assert set(key_of("liz", "beth", "betty", "elizabeth")) == {"elizabeth"}
    assert set(key_of("bill", "william", "will")) == {"william"}
    # common UK nicknames the package files elsewhere or not at all (trish: none; cathy:
    # under katherine, a different spelling; pat stays patrick's, being both)
    assert set(key_of("trish", "patty", "patsy", "patricia")) == {"patricia"}
    assert set(key_of("cathy", "cath", "catherine")) == {"catherine"}
    assert set(key_of("babs", "barbara")) == {"barbara"}


def test_nickname_distinct_names_stay_distinct():
    # James and John are different people; jim and jack follow their own formal names.
    james, john, jim, jack = key_of("james", "john", "jim", "jack")
    assert james != john
    assert (jim, jack) == (james, john)


def test_nickname_key_unknown_and_deterministic():
    # Unknown names map to themselves; an ambiguous nickname always gets the same single key.
    assert key_of("zebedeus", "sam", "sam") == ["zebedeus", "samuel", "samuel"]
    # The package lists jane under virginia and daisy under margaret; both are names in their
    # own right, and daisy must not collide with margaret.
    assert key_of("jane", "daisy", "margaret") == ["jane", "daisy", "margaret"]
    assert values(nickname_key(pd.Series([None, "  "]))) == [None, None]


def test_phonetic_key_merges_spelling_variants():
    s = pd.Series(["smith", "smyth", "catherine", "kathryn", "van der berg", "vanderberg"])
    # Metaphone: th -> 0, y/i vowels dropped, c/k -> K; spaces removed before coding.
    assert values(phonetic_key(s)) == ["SM0", "SM0", "K0RN", "K0RN", "FNTRBRK", "FNTRBRK"]


def test_phonetic_key_missing_for_no_letters():
    assert values(phonetic_key(pd.Series(["123", None]))) == [None, None]


# --- e-mail -----------------------------------------------------------------------------------


def test_normalize_email_cleans_and_lowercases():
    s = pd.Series([" Ann.Lee@Example.COM ", "mailto:X@Y.co.uk", "<bo@z.io>", "a\u200b@b.com"])
    assert values(normalize_email(s)) == ["ann.lee@example.com", "x@y.co.uk", "bo@z.io", "a@b.com"]


@pytest.mark.parametrize(
    "bad",
    [
        "ann.example.com",  # no @
        "ann@@example.com",  # two @
        "ann@b@example.com",  # two @
        "ann lee@example.com",  # space in local part
        "ann@example.com.",  # trailing dot in domain
        "ann.@example.com",  # local part ends with a dot
        "an..n@example.com",  # doubled dot
        "ann@example",  # domain without a dot
        "ann@-example.com",  # label starting with a hyphen
        "ann@example.c",  # one-letter TLD
        "@example.com",  # empty local part
        "a" * 65 + "@example.com",  # local part longer than 64
    ],
)
def test_normalize_email_rejects_invalid(bad):
    assert values(normalize_email(pd.Series([bad]))) == [None]


def test_normalize_email_blanks_placeholders():
    s = pd.Series(["TEST@TEST.COM", "noemail@noemail.com", "no@email.com", "n/a", "real@x.com"])
    assert values(normalize_email(s)) == [None, None, None, None, "real@x.com"]


def test_email_match_key_gmail_and_plus_tags():
    s = pd.Series(
        [
            "j.o.e.bloggs+shop@gmail.com",  # gmail ignores dots and +tags
            "joebloggs@googlemail.com",  # googlemail is gmail
            "joe.bloggs+news@outlook.com",  # other providers: +tag dropped, dots kept
            "joe.bloggs@outlook.com",
        ]
    )
    assert values(email_match_key(s)) == [
        "joebloggs@gmail.com",
        "joebloggs@gmail.com",
        "joe.bloggs@outlook.com",
        "joe.bloggs@outlook.com",
    ]


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("ann@gmial.com", "ann@gmail.com"),  # two letters swapped
        ("ann@gmai1.com", "ann@gmail.com"),  # "l" typed (or scanned) as "1"
        ("ann@grnail.com", "ann@gmail.com"),  # OCR: "m" read as "rn"
        ("ann@btintemet.com", "ann@btinternet.com"),  # OCR the other way: "rn" read as "m"
        ("ann@outlook.corn", "ann@outlook.com"),  # OCR in the top-level domain
        ("ann@hotmail.co.k", "ann@hotmail.co.uk"),  # a letter dropped
        ("ann@gmail.ccom", "ann@gmail.com"),  # a letter doubled
        ("ann@gmai.lcom", "ann@gmail.com"),  # the dot one place off
        ("ann@yaboo.co.uk", "ann@yahoo.co.uk"),  # neighbouring key
        ("ann@hotmai1.co.uk", "ann@hotmail.co.uk"),
        ("a.n.n+shop@gmial.com", "ann@gmail.com"),  # corrected first, then Gmail's rules
        ("ann@googlemial.com", "ann@gmail.com"),  # googlemail misspelt is still Gmail
        ("rob***@gmial.com", "rob***@gmail.com"),  # a masked address keys the same way
    ],
)
def test_email_match_key_corrects_misspelt_provider_domains(typed, key):
    # One person's records must share a key although one was typed "gmial.com".
    assert values(email_match_key(pd.Series([typed]))) == [key]


@pytest.mark.parametrize(
    "email",
    [
        "ann@mail.com",  # a provider: never changed, although one letter from gmail.com
        "ann@ymail.com",  # likewise (Yahoo)
        "ann@live.com",
        "ann@me.com",
        "ann@aon.com",  # a real company one letter from aol.com: short providers never targets
        "ann@mi.com",  # one letter from me.com
        "ann@max.com",  # one letter from mac.com
        "ann@gmc.com",  # one letter from gmx.com
        "ann@hive.co.uk",  # a real domain one letter from live.co.uk: "live" is short
        "ann@rail.com",  # one letter from mail.com
        "ann@gail.com",  # as near gmail.com as mail.com: a tie, left alone
        "ann@xmail.com",  # gmail.com, ymail.com, mail.com: a tie
        "ann@hotmail.de",  # a real domain two letters from hotmail.com
        "ann@yahoo.co.jp",  # two letters from yahoo.co.uk
        "ann@example.com",  # corporate domains are not providers' misspellings
        "ann@examp1e.com",  # nor are corporate domains' misspellings corrected
        "ann@nhs.net",
        "ann@corp.co.uk",
    ],
)
def test_email_match_key_leaves_providers_and_other_domains_alone(email):
    assert values(email_match_key(pd.Series([email]))) == [email]


def test_misspelt_provider_domain_is_kept_in_the_email_itself():
    # What the user sees: the address as typed; only the matching key reads it as gmail.com.
    emails = normalize_email(pd.Series(["Ann.Lee@GMIAL.com", "ann.lee@gmail.com"]))
    assert values(emails) == ["ann.lee@gmial.com", "ann.lee@gmail.com"]
    assert values(email_match_key(emails)) == ["annlee@gmail.com", "annlee@gmail.com"]


def test_provider_domains_are_checked_once_per_distinct_domain(monkeypatch):
    # Nightly runs key millions of addresses: the domain check runs per distinct domain.
    from ccv.identity.standardize import emails as module

    seen: list[list[str]] = []
    original = module._corrected_domains

    def spy(domains):
        seen.append(list(domains))
        return original(domains)

    monkeypatch.setattr(module, "_corrected_domains", spy)
    s = pd.Series([f"user{i}@{d}" for i in range(300) for d in ("gmial.com", "x.com")])
    keys = values(email_match_key(s))
    assert keys[:2] == ["user0@gmail.com", "user0@x.com"]
    assert [sorted(call) for call in seen] == [["gmial.com", "x.com"]]


# --- phone ------------------------------------------------------------------------------------

UK_MOBILE = "+447400123456"  # 07400 1xxxxx is in libphonenumber's GB mobile range


@pytest.mark.parametrize(
    "raw",
    [
        "+44 7400 123456",
        "07400123456",
        "(07400) 123-456",
        "0044 7400 123456",
        "447400123456",  # country code without "+"
        "+44 (0)7400 123456",  # the "(0)" trunk prefix people write after +44
        "7400123456",  # Excel dropped the leading zero
        "4.47400123456E+11",  # Excel scientific notation with every digit kept
        "+44 7400 123456 ext. 9",  # extension is not part of E.164
    ],
)
def test_normalize_phone_formats_give_same_e164(raw):
    assert values(normalize_phone(pd.Series([raw]))) == [UK_MOBILE]


def test_normalize_phone_numeric_input():
    # A phone column read as numbers: the float's ".0" must not become digits.
    s = pd.Series([7400123456.0, 447400123456.0, np.nan])
    assert values(normalize_phone(s)) == [UK_MOBILE, UK_MOBILE, None]


def test_normalize_phone_invalid_and_lossy():
    s = pd.Series(
        [
            "4.474E+11",  # Excel kept 4 digits of 12: zeros were padded, number unknown
            "074001234567",  # one digit too many: no +44 number has 11 digits
            "12345",
            "call me",
            "0000000000",  # placeholder
            "07700 900123",  # Ofcom drama range: fictional
            "+44 7700 900999",
        ]
    )
    assert values(normalize_phone(s)) == [None] * 7


def test_normalize_phone_keeps_possible_numbers_that_are_not_valid():
    # A pager range, a digit short, an unallocated landline code: not *valid*, but of a
    # possible length, so kept as identity evidence; a valid reading still wins.
    s = pd.Series(["07636 455665", "07400 12345", "+44 (0)7636 455665", "01099 123456"])
    assert values(normalize_phone(s)) == [
        "+447636455665",
        "+44740012345",
        "+447636455665",
        "+441099123456",
    ]
    # bare digits: valid as international beats possible as national
    assert values(normalize_phone(pd.Series(["16502530000", "7636455665"]))) == [
        "+16502530000",
        "+447636455665",
    ]


def test_normalize_phone_landline_and_other_regions():
    s = pd.Series(["020 7946 0018", "+1 650 253 0000", "16502530000"])
    # A London landline via the parser; a US number with "+"; and without "+": invalid as
    # a GB national number, so retried as international.
    assert values(normalize_phone(s)) == ["+442079460018", "+16502530000", "+16502530000"]
    # With a US default region the 10-digit national form is understood.
    assert values(normalize_phone(pd.Series(["(650) 253-0000"]), default_region="US")) == [
        "+16502530000"
    ]


def test_phone_fast_path_matches_parser():
    # The regex fast path must give exactly what phonenumbers gives, or defer (None).
    rng = random.Random(42)
    shapes = ["+44 {a} {b}", "0{a}{b}", "(0{a}) {b}", "0044 {a} {b}", "44{a}{b}", "+44 (0){a}{b}"]
    checked = 0
    for _ in range(3000):
        a = "7" + "".join(rng.choice("0123456789") for _ in range(3))
        b = "".join(rng.choice("0123456789") for _ in range(rng.choice([5, 6, 6, 6, 7])))
        raw = rng.choice(shapes).format(a=a, b=b)
        fast = _phone_fast(raw)
        if fast is not None:
            checked += 1
            assert fast == _phone_slow(raw, "GB"), raw
    assert checked > 1000  # the fast path really was exercised


# --- postcode / loyalty -----------------------------------------------------------------------


def test_normalize_postcode():
    s = pd.Series(["sw1a1aa", " m1  1ae ", "Ec1A-1bb", "75008", "d02 x285", "n/a", None])
    # UK shapes get one space before the 3-character inward code; others are only upper-cased.
    assert values(normalize_postcode(s)) == [
        "SW1A 1AA",
        "M1 1AE",
        "EC1A 1BB",
        "75008",
        "D02 X285",
        None,
        None,
    ]


def test_normalize_loyalty_id():
    s = pd.Series(["ab-12 34", "2.900001234567E+12", "2.9E+12", "2900001234567", "0000000000"])
    # Separators dropped; Excel notation expands when all 13 digits are present and is NA when
    # Excel rounded digits away; all-zero filler is a placeholder.
    assert values(normalize_loyalty_id(s)) == [
        "AB1234",
        "2900001234567",
        None,
        "2900001234567",
        None,
    ]


# --- dates ------------------------------------------------------------------------------------


def test_parse_date_defaults():
    s = pd.Series(["1985-03-02", "02/03/1985", "2/3/1985", "31/02/2000", "29/02/2000", "x", None])
    out = parse_date(s)
    assert out.dtype == std.DATE_DTYPE
    # Day first by default (UK); 31 February does not exist; 2000 is a leap year.
    assert values(out) == [
        dt.date(1985, 3, 2),
        dt.date(1985, 3, 2),
        dt.date(1985, 3, 2),
        None,
        dt.date(2000, 2, 29),
        None,
        None,
    ]


def test_parse_date_month_first_and_formats():
    assert values(parse_date(pd.Series(["02/03/1985"]), dayfirst=False)) == [dt.date(1985, 2, 3)]
    # Explicit formats are tried in order; the first that parses wins.
    out = parse_date(pd.Series(["19850302", "1985.03.02"]), formats=["%Y%m%d", "%Y.%m.%d"])
    assert values(out) == [dt.date(1985, 3, 2), dt.date(1985, 3, 2)]


def test_parse_date_typed_values_pass_through():
    stamps = pd.Series(pd.to_datetime(["2001-01-02 23:30", None]))
    assert values(parse_date(stamps)) == [dt.date(2001, 1, 2), None]
    mixed = pd.Series([dt.date(2001, 1, 2), pd.Timestamp("2001-01-03 10:00"), "2001-01-04"])
    assert values(parse_date(mixed)) == [dt.date(2001, 1, d) for d in (2, 3, 4)]


# --- standardize_customers --------------------------------------------------------------------


def test_standardize_customers_five_rows():
    df = pd.DataFrame(
        {
            "first_name": ["Bob", "ROBERT", None, "Zoë", "N/A"],
            "last_name": ["O'Brien", "obrien", None, "van der Berg", "Smith"],
            "full_name": [None, None, "Mrs. Elizabeth Jones", None, None],
            "email": [
                "Bob.OBrien+crm@GoogleMail.com",
                "bobobrien@gmail.com",
                "not an email",
                "zoe@example.co.uk",
                "test@test.com",
            ],
            "phone": ["07400 123456", "+44 (0)7400 123456", None, "0000000000", "4.4E+11"],
            "birth_date": ["1980-05-17", "17/05/1980", "31/02/1990", None, "unknown"],
            "postcode": ["sw1a1aa", "SW1A 1AA", None, "d02x285", "n/a"],
            "city": ["St. Albans", "ST ALBANS", None, "Dublin", "-"],
            "loyalty_id": ["2.900001234567E+12", "2900001234567", None, None, None],
        }
    )
    raw = df.copy()
    out = standardize_customers(df)

    pd.testing.assert_frame_equal(df, raw)  # input untouched
    pd.testing.assert_frame_equal(out[raw.columns], raw)  # raw columns kept as they were
    # Rows 0 and 1 are one person written two ways: every matching column agrees.
    for col in [
        "std_last_name",
        "std_first_name_key",
        "std_email_key",
        "std_phone",
        "std_birth_date",
        "std_postcode",
        "std_city",
        "std_loyalty_id",
    ]:
        assert out.loc[0, col] == out.loc[1, col], col
    assert values(out["std_first_name"]) == ["bob", "robert", "elizabeth", "zoe", None]
    assert values(out["std_last_name"]) == ["obrien", "obrien", "jones", "van der berg", "smith"]
    assert values(out["std_first_name_key"]) == ["robert", "robert", "elizabeth", "zoe", None]
    assert out.loc[0, "std_email_key"] == "bobobrien@gmail.com"
    assert values(out["std_email"])[2:] == [None, "zoe@example.co.uk", None]
    assert values(out["std_phone"]) == [UK_MOBILE, UK_MOBILE, None, None, None]
    assert values(out["std_birth_date"]) == [dt.date(1980, 5, 17)] * 2 + [None] * 3
    assert values(out["std_postcode"]) == ["SW1A 1AA", "SW1A 1AA", None, "D02X285", None]
    assert values(out["std_city"]) == ["st albans", "st albans", None, "dublin", None]
    assert out.loc[0, "std_loyalty_id"] == "2900001234567"
    assert out.loc[3, "std_last_phonetic"] == "FNTRBRK"


def test_standardize_customers_missing_columns_are_all_na():
    out = standardize_customers(pd.DataFrame({"email": ["a@b.com"]}))
    assert out.loc[0, "std_email"] == "a@b.com"
    std_cols = [c for c in out.columns if c.startswith("std_") and not c.startswith("std_email")]
    assert out[std_cols].isna().all().all()
    assert out["std_birth_date"].dtype == std.DATE_DTYPE


def test_standardize_customers_duplicate_index():
    # Positional work: a non-unique index (e.g. concatenated sources) must not misalign rows.
    df = pd.DataFrame(
        {"first_name": [None, "Ann"], "last_name": [None, "Lee"], "full_name": ["Bo Li", None]},
        index=[7, 7],
    )
    out = standardize_customers(df)
    assert values(out["std_first_name"]) == ["bo", "ann"]
    assert values(out["std_last_name"]) == ["li", "lee"]


def test_docstring_examples():
    # The worked examples in the package's docstrings are part of its documentation: keep them
    # true, in every module of it.
    import doctest
    import importlib
    import pkgutil

    attempted = 0
    for module in pkgutil.iter_modules(std.__path__):
        result = doctest.testmod(importlib.import_module(f"{std.__name__}.{module.name}"))
        assert result.failed == 0, module.name
        attempted += result.attempted
    assert attempted >= 10
