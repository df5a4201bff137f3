"""The Arrow kernels of ccv.identity.standardize must answer exactly as its per-value Python
definitions. Each test feeds the awkward inputs real CRM exports contain (zero-width and
non-ASCII characters, masked e-mails, Excel phone numbers, "Last, First" names with titles) to
the public, vectorised function and to the per-value definition, and requires equal answers."""

from __future__ import annotations

import random

import pandas as pd
import pyarrow as pa
import pytest
from rapidfuzz.distance import DamerauLevenshtein

from ccv.identity import standardize as std
from ccv.identity.standardize import (
    PLACEHOLDERS,
    blank_placeholders,
    clean_text,
    email_match_key,
    fold,
    normalize_email,
    normalize_loyalty_id,
    normalize_phone,
    normalize_postcode,
    split_full_name,
    standardize_customers,
)
from ccv.identity.standardize.emails import (
    MAILBOX_PROVIDERS,
    _corrected_domains,
    _email_key,
    _normalize_email_text,
)
from ccv.identity.standardize.identifiers import (
    _normalize_loyalty_text,
    _normalize_phone_text,
    _normalize_postcode_text,
    _parse_possible,
    _parse_valid,
    _phone_gb_ascii,
    _phone_slow,
    _retry_is_hopeless,
)
from ccv.identity.standardize.kernels import _clean
from ccv.identity.standardize.names import _split_name
from ccv.identity.standardize.text import _blank_or, _fold, _placeholder_test

# Shapes that take the ASCII kernel, the Python path, and the seam between them.
AWKWARD = [
    "",
    " ",
    "  Ann   Lee ",
    "Ann\u200bLee",  # zero-width space: cleaned to ASCII, then the kernel
    "\ufeffSmith",  # byte-order mark
    "Zo\u00eb",  # stays non-ASCII: the Python path
    "Ｊｏｈｎ",  # fullwidth
    "Ann\tLee\nJr",  # ASCII but not printable
    "a\x1cb",  # a separator Python's str.split treats as whitespace
    "\u00a0\u00a0",
    "N/A",
    "n. a.",
    "Not-Given",
    "--",
    "000 000 0000",
    "(999) 999-9999",
    "0000 0",
    "mailto:<Ann.Lee@Example.COM>",
    "<a@b.co>",
    "rob***@gmail.com",  # masked on a till receipt: a syntactically valid address
    "r***h@googlemail.com",
    "j.o.e+promo@googlemail.com",
    "+tag@x.com",
    "a@b@c.com",
    "a..b@x.com",
    "test@test.com",
    "TEST@TEST.COM",
    "4.47911123456E+11",  # Excel, every digit kept
    "4.47701E+11",  # Excel, digits lost
    "2.900001234567E+12",
    "07911 123456",
    "+44 (0)7911 123456",
    "0044 7911 123456",
    "7911 123456",  # Excel dropped the leading 0
    "7613 218652",  # not valid in GB; retried as +7...: hopeless
    "020 7946 0018",
    "+1 650 253 0000",
    "16502530000",
    "sw1a1aa",
    " m1  1ae ",
    "d02 x285",
    "SW1A-1AA",
    "SMITH, Mr Robert",
    "Mr SMITH, Robert",
    "Smith Jr, John",
    "Smith, John, PhD",  # two commas: the Python path
    "Jr, John",
    "Smith,",
    ", John",
    "Mr, John Jr",
    "Dr. Jane van der Berg III",
    "Jane Paul Van De Graaf",
    "Mr Smith",
    "Mr",
    "Mr Jr",
    "Jr Mr",
    "M.R. O'Brien",
    "Mary-Jane St. Clair",
    "J.R.R. Tolkien Esq.",
]


def reference(fn, values):
    """The per-value definition applied to each value, as a list (None for missing)."""
    return [fn(v) for v in values]


def listed(s: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in s.tolist()]


def is_placeholder(text: str) -> bool:
    return _placeholder_test(PLACEHOLDERS)(text)


@pytest.mark.parametrize(
    ("vectorised", "per_value"),
    [
        (clean_text, _clean),
        (fold, _fold),
        (blank_placeholders, _blank_or(lambda c: c, is_placeholder)),
        (normalize_email, lambda t: _normalize_email_text(t, is_placeholder)),
        (email_match_key, _email_key),
        (normalize_phone, lambda t: _normalize_phone_text(t, "GB", is_placeholder)),
        (normalize_postcode, lambda t: _normalize_postcode_text(t, is_placeholder)),
        (normalize_loyalty_id, lambda t: _normalize_loyalty_text(t, is_placeholder)),
    ],
)
def test_vectorised_equals_per_value_definition(vectorised, per_value):
    assert listed(vectorised(pd.Series(AWKWARD))) == reference(per_value, AWKWARD)


# Misspelt provider domains: corrected, left alone, ties, short providers, both paths mixed.
EMAIL_DOMAINS = [
    "ann@gmial.com",
    "Ann.Lee@GRNAIL.COM",  # upper case: lower-cased before the domain is checked
    " ann@gmai1.com ",  # padded
    "a.n.n+x@gmai.lcom",
    "bo@hotmail.co.k",
    "cy@outlook.corn",
    "cy@btintemet.com",
    "rob***@gmial.com",
    "x@mail.com",
    "x@gail.com",
    "x@xmail.com",
    "x@aon.com",
    "x@examp1e.com",
    "x@",
    "@gmial.com",
    "x@gmial.com@gmial.com",  # the last "@" splits
    "zoë@gmial.com",  # non-ASCII local part: the Python path, same correction
    "zoe@gmaïl.com",  # non-ASCII domain, one letter from gmail.com
    "zoe@gmial.com\u200b",  # an invisible character left in: the Python path
    "ann@gmial.com\t",  # ASCII but not printable
]


def test_email_match_key_domains_equal_per_value_definition():
    values = AWKWARD + EMAIL_DOMAINS
    assert listed(email_match_key(pd.Series(values))) == reference(_email_key, values)
    assert _email_key("zoe@gmaïl.com") == "zoe@gmail.com"  # the Python path corrects too


def _provider_reference(domain: str) -> str:
    """The domain rule of `email_match_key` as written: Damerau-Levenshtein, one at a time."""
    if domain in MAILBOX_PROVIDERS:
        return domain

    def distance(provider: str) -> int:
        folded = domain.replace("rn", "m"), provider.replace("rn", "m")  # "rn" read as "m"
        return min(
            DamerauLevenshtein.distance(domain, provider), DamerauLevenshtein.distance(*folded)
        )

    by_provider = {p: distance(p) for p in MAILBOX_PROVIDERS}
    nearest = min(by_provider.values())
    closest = [p for p, d in by_provider.items() if d == nearest]
    if nearest <= 1 and len(closest) == 1 and len(closest[0].split(".")[0]) >= 5:
        return closest[0]
    return domain


def test_provider_domain_rule_matches_its_plain_definition_on_random_slips():
    # cdist with OSA over all distinct domains must decide exactly as the rule reads.
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789.-ï"
    providers = sorted(MAILBOX_PROVIDERS)
    domains = []
    for _ in range(2500):
        d = rng.choice(providers)
        for _ in range(rng.choice([1, 1, 1, 2])):
            i = rng.randrange(len(d))
            kind = rng.randrange(5)
            if kind == 0:
                d = d[:i] + d[i + 1 :]  # dropped
            elif kind == 1:
                d = d[:i] + rng.choice(letters) + d[i:]  # inserted
            elif kind == 2:
                d = d[:i] + rng.choice(letters) + d[i + 1 :]  # replaced
            elif kind == 3 and i + 1 < len(d):
                d = d[:i] + d[i + 1] + d[i] + d[i + 2 :]  # swapped
            else:
                d = d.replace("m", "rn", 1) if rng.random() < 0.5 else d.replace("rn", "m", 1)
        domains.append(d)
    domains += ["", "x", "gmail", "corp.co.uk", "rnail.com", "grnail.corn"]
    got = _corrected_domains(domains)
    assert got == [_provider_reference(d) for d in domains]
    assert sum(g != d for g, d in zip(got, domains, strict=True)) > 500  # many corrections


def test_split_full_name_equals_per_value_definition():
    got = split_full_name(pd.Series(AWKWARD))
    pairs = list(zip(listed(got["first_name"]), listed(got["last_name"]), strict=True))
    assert pairs == reference(_split_name, AWKWARD)


def test_placeholders_none_and_custom_sets_in_the_kernel():
    # The kernel builds its own patterns from the set: a custom set and None must behave as in
    # the per-value definition ("na" is a real surname for some).
    values = pd.Series(["na", "N.A.", "n/a", "unknown", "-", "none of it"])
    for placeholders in (None, {"n/a"}, {"unknown", "n.a."}):
        test = _placeholder_test(placeholders)
        expected = reference(_blank_or(lambda c: c, test), values)
        assert listed(blank_placeholders(values, placeholders)) == expected


def test_zero_width_and_nbsp_do_not_change_identifiers():
    # What the user sees: invisible characters pasted into a field do not make a new identity.
    assert listed(normalize_email(pd.Series(["ann\u200b@x.com", "ann@x.com"]))) == [
        "ann@x.com",
        "ann@x.com",
    ]
    assert listed(normalize_phone(pd.Series(["07911\u00a0123456", "\ufeff07911 123456"]))) == [
        "+447911123456",
        "+447911123456",
    ]
    assert listed(normalize_postcode(pd.Series(["SW1A\u200b1AA"]))) == ["SW1A 1AA"]


def test_masked_emails_are_kept_and_keyed():
    # "rob***@gmail.com" is how a till prints an address; it is valid syntax and keys as itself.
    masked = normalize_email(pd.Series(["rob***@gmail.com", "R***H@GoogleMail.com"]))
    assert listed(masked) == ["rob***@gmail.com", "r***h@googlemail.com"]
    assert listed(email_match_key(masked)) == ["rob***@gmail.com", "r***h@gmail.com"]


def test_excel_and_bare_phone_numbers():
    raw = pd.Series(
        ["4.47911123456E+11", "4.47701E+11", "7911 123456", "20 7946 0018", "7613 218652"]
    )
    # exact Excel value, Excel-rounded, leading 0 lost (mobile, London), a pager number with
    # its 0 lost (invalid everywhere, possible in GB)
    assert listed(normalize_phone(raw)) == [
        "+447911123456",
        None,
        "+447911123456",
        "+442079460018",
        "+447613218652",
    ]


def test_gb_phone_kernel_matches_the_parser_on_random_numbers():
    # The kernel applies libphonenumber's +44 metadata itself; every number it decides must get
    # exactly the parser's answer, across prefixes, lengths and number ranges.
    rng = random.Random(4)
    shapes = ["+44{}", "+44 (0){}", "0044 {}", "00440{}", "0{}", "({})", "{}", "44{}", "0 {}"]
    raws = []
    for _ in range(3000):
        length = rng.choice([4, 6, 7, 8, 9, 9, 10, 10, 10, 10, 11, 12])
        nsn = rng.choice("123456789") + "".join(rng.choice("0123456789") for _ in range(length))
        raws.append(rng.choice(shapes).format(nsn))
    e164, undecided = _phone_gb_ascii(pa.array(raws, type=pa.large_string()))
    decided = 0
    for raw, fast, open_ in zip(raws, e164.to_pylist(), undecided.to_pylist(), strict=True):
        if not open_:
            decided += 1
            assert fast == _phone_slow(raw, "GB"), raw
    assert decided > 2000  # the kernel really decides most shapes


def test_retry_is_hopeless_agrees_with_the_parser():
    # A bare number invalid in GB is retried as "+digits"; "hopeless" must mean the parser
    # finds nothing valid.
    rng = random.Random(5)
    for _ in range(2000):
        digits = rng.choice("123456789") + "".join(
            rng.choice("0123456789") for _ in range(rng.randint(7, 13))
        )
        if _retry_is_hopeless(digits):
            assert _parse_valid("+" + digits, None) is None, digits
            assert _parse_possible("+" + digits, None) is None, digits


def test_names_last_first_titles_and_suffixes():
    got = split_full_name(
        pd.Series(["SMITH, Mr Robert", "Mr SMITH, Robert", "Smith Jr, John", "Smith, John, PhD"])
    )
    assert listed(got["first_name"]) == ["Robert", "Robert", "John", "John"]
    assert listed(got["last_name"]) == ["SMITH", "SMITH", "Smith", "Smith"]


def test_standardize_customers_same_for_text_and_object_columns():
    # Arrow-backed text takes the Arrow route, object columns the pandas one: same answers.
    frame = pd.DataFrame(
        {
            "first_name": ["Bob", None, "Zoë", "N/A"],
            "last_name": ["O'Brien", None, "Smith\u200b", "Lee"],
            "full_name": [None, "SMITH, Mr Robert", None, "Dr Ann Lee"],
            "email": ["Bob@X.com", "rob***@gmail.com", "n/a", None],
            "phone": ["07911 123456", "4.47911123456E+11", "7911 123456", None],
            "postcode": ["sw1a1aa", None, "75008", "m1 1ae"],
            "city": ["London", "St. Albans", "Łódź", None],
            "loyalty_id": ["2900 0012 3456 7", None, "2.900001234567E+12", "x"],
            "birth_date": ["1985-03-02", "02/03/1985", None, "31/02/2000"],
        }
    )
    as_text = standardize_customers(frame.astype("str"))
    as_object = standardize_customers(frame.astype(object))
    for column in std.STD_COLUMNS:
        assert listed(as_text[column]) == listed(as_object[column]), column
    assert listed(as_text["std_first_name"]) == ["bob", "robert", "zoe", "ann"]
    assert listed(as_text["std_last_name"]) == ["obrien", "smith", "smith", "lee"]
    assert listed(as_text["std_phone"]) == ["+447911123456"] * 3 + [None]
