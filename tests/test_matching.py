"""Probabilistic links between customer records, end to end on small realistic records."""

import numpy as np
import pandas as pd

from ccv.config import IdentityConfig
from ccv.identity.resolve import blank_default_dates, link_pairs
from ccv.identity.standalone import resolve_frame


def people(rows: list[tuple]) -> pd.DataFrame:
    columns = [
        "source",
        "source_record_id",
        "first_name",
        "last_name",
        "email",
        "birth_date",
        "postcode",
    ]
    return pd.DataFrame(rows, columns=columns)


def background(n: int = 400) -> list[tuple]:
    """Distinct strangers (names, birth dates, postcodes all differ), so that u and m can be
    estimated as on a real file."""
    rng = np.random.default_rng(3)
    syllables = ["ka", "lo", "mi", "ren", "to", "sha", "vi", "der", "po", "lin", "ga", "rus"]
    names = {"".join(rng.choice(syllables, 3)).title() for _ in range(5 * n)}
    names = sorted(names)
    firsts, lasts = names[:n], names[n : 2 * n]
    days = rng.choice(np.arange(20000), n, replace=False)
    return [
        (
            "crm",
            f"b{i}",
            firsts[i],
            lasts[i],
            f"p{i}@mail.test",
            str(np.datetime64("1940-01-01") + int(days[i])),
            f"N{i // 10} {i % 10}AB",
        )
        for i in range(n)
    ]


def test_typos_nicknames_and_swapped_dates_join_but_a_namesake_does_not():
    rows = [
        *background(),
        ("crm", "r1", "Robert", "Smithson", "rob.smithson@example.com", "1980-03-04", "SW1A 1AA"),
        ("shop", "r2", "Bob", "Smithsn", "ROB.SMITHSON@example.com", "1980-04-03", "SW1A 1AA"),
        # same name, different person: other birth date, email and postcode
        ("crm", "r3", "Robert", "Smithson", "r.s@elsewhere.test", "1962-11-20", "LS1 4AP"),
    ]
    ids = resolve_frame(people(rows), IdentityConfig())
    by_key = dict(zip([r[1] for r in rows], ids, strict=True))
    assert by_key["r1"] == by_key["r2"]
    assert by_key["r3"] != by_key["r1"]
    # strangers stay strangers
    assert ids.iloc[:400].nunique() == 400


def test_system_default_birth_dates_are_blanked():
    dates = pd.Series(["2008-10-14"] * 30 + [f"1980-01-{d:02d}" for d in range(1, 29)] * 2)
    blanked = blank_default_dates(dates)
    assert blanked.iloc[:30].isna().all()  # a form default held by 30 of 86 records
    assert blanked.iloc[30:].notna().all()
    assert blank_default_dates(pd.Series(["1900-01-01", "1980-01-01"])).isna().tolist() == [
        True,
        False,
    ]


def test_customer_records_are_never_linked_deterministically():
    # two CRM rows sharing a household email, and a guest order with that email
    records = pd.DataFrame(
        {
            "record_kind": ["customer", "customer", "order"],
            "source": ["crm", "crm", "web"],
            "source_record_id": ["a", "b", "~1"],
            "std_email_key": ["family@example.com"] * 3,
            "std_phone": [None] * 3,
            "std_loyalty_id": [None] * 3,
            "ref_source": [None] * 3,
            "ref_record_id": [None] * 3,
        }
    )
    edges = link_pairs(records)
    # the order hangs on one customer record; the two CRM rows are the matcher's call
    assert edges[["left", "right"]].values.tolist() == [[0, 2]]


def test_thresholds_are_validated():
    import pytest

    with pytest.raises(ValueError, match="strong_match_probability"):
        IdentityConfig(match_probability=0.99, strong_match_probability=0.9)


def test_scoring_a_chunk_of_pairs_at_a_time_keeps_the_same_links(monkeypatch):
    # links_from_levels scores ~10M pairs a night in chunks (bounded memory): chunks of 97
    # pairs must accept exactly the links one pass accepts, with the same evidence
    from ccv.identity import arrays, matching
    from ccv.identity.comparisons import DEFAULT_COMPARISONS
    from ccv.identity.scoring import Params

    params = Params.load(matching.DEFAULT_PARAMS_PATH)
    rng = np.random.default_rng(3)
    n = 1_000
    levels = pd.DataFrame({"left": np.arange(n), "right": np.arange(n) + n})
    for comparison in DEFAULT_COMPARISONS:
        top = max(params.comparisons[comparison.name].m)
        # mostly agreeing fields, so that a good share of the pairs become links
        levels[f"{comparison.name}_level"] = np.where(
            rng.random(n) < 0.6, top, rng.integers(-1, top + 1, n)
        ).astype(np.int8)
    levels["rules"] = pd.Categorical(rng.choice(["email_key", "phone+surname_dob"], n))
    whole = matching.links_from_levels(levels, params, False, 0.9)
    monkeypatch.setattr(arrays, "PAIR_CHUNK", 97)
    chunked = matching.links_from_levels(levels, params, False, 0.9)
    pd.testing.assert_frame_equal(whole, chunked)
    assert 0 < len(whole) < n  # some pairs accepted, some not
