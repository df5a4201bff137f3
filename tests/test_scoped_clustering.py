"""A night that re-clusters only the scope of its changes (`ccv.identity.scoped`) ends exactly
where re-clustering every record with the same parameters ends."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ccv.config import load_config
from ccv.identity import neighbourhood, resolve, scoped
from ccv.pipeline import run_nightly
from tests import test_incremental, test_incremental_identity
from tests.conftest import copy_of_published, make_project, night_without_report
from tests.test_incremental import identity_rows

NIGHTS = 3
"""Both schemes of nights below deliver three (order drops and CRM drops)."""
assert NIGHTS == test_incremental.NIGHTS == len(test_incremental_identity.ESHOP_ROWS)


def identity_state(config_path: Path) -> dict[str, list]:
    """`identity_rows` with the evidence's weights (both sides score with the same
    parameters), and identity_clusters by record key."""
    state = identity_rows(config_path, weights=True)
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            """
            select s.record_kind, s.source, s.source_record_id, c.cluster, c.component, c.rule
            from identity_clusters c join identity_std s using (record_no)
            """
        ).fetchall()
    state["identity_clusters"] = sorted(map(str, rows))
    return state


def run_nights(
    config_path: Path, deliver, monkeypatch, everything: bool, nights: range, shares: list
):
    """Run `nights`; with `everything`, no night builds on last night's clusters. Appends to
    `shares` (those of the project's earlier nights) each night's share of records
    re-clustered (`Work.reclustered`, as `identity_runs` reports it); returns whether the links
    ever crossed the scope (they must not: `close_over_links` is only a guard) and the sizes of
    the neighbourhoods read."""
    crossed, read = [], []
    close, find = scoped.close_over_links, neighbourhood.find

    def spy_close(in_scope, matched, last):
        closed = close(in_scope, matched, last)
        crossed.append(not np.array_equal(closed, in_scope))
        return closed

    def spy_find(*args, **kwargs):
        hood = find(*args, **kwargs)
        read.append(len(hood.record_nos))
        return hood

    with monkeypatch.context() as patch:
        patch.setattr(scoped, "close_over_links", spy_close)
        patch.setattr(neighbourhood, "find", spy_find)
        if everything:  # every record read, and clustered
            patch.setattr(resolve, "builds_on_clusters", lambda *args: False)
            patch.setattr(scoped, "last_clusters", lambda *args: None)
        for night in nights:
            deliver(config_path, night)
            found = len(read)
            work = night_without_report(load_config(config_path)).resolve.work
            shares.append(work.reclustered / work.records)
            # what a night read is reported: the neighbourhood and tonight's fresh records, or
            # every record
            hood = read[-1] + work.standardised if len(read) > found else work.records
            assert work.records_read == hood
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        reported = con.execute(
            "select reclustered / records from identity_runs order by run_id"
        ).fetchall()
    assert [share for (share,) in reported] == shares
    return crossed, read


LEAVING_CARD = "2900010079592"


def crm_nights_with_a_leaving_card(config_path: Path) -> None:
    """The CRM nights, where night 3's corrected loyalty drop also loses a card with fifteen
    till receipts (one identity record: the card is all they carry). The receipts stay and
    must cluster on their own: only the gone record's component says so (`scope`)."""
    test_incremental_identity.write_nights(config_path)
    corrected = config_path.parent / "data" / "sample" / "drops" / "loyalty_2.csv.corrected"
    lines = corrected.read_text().splitlines(True)
    assert any(x.startswith(LEAVING_CARD) for x in lines)
    corrected.write_text("".join(x for x in lines if not x.startswith(LEAVING_CARD)))


def quiet_account(data: Path, rows: range) -> str:
    """The first e-shop account of `rows` (data rows of the export) that nothing else reaches:
    no order or survey names it or carries its e-mail, and no other account or loyalty card has
    its surname (no probabilistic link either). A night's other records never pull its cluster
    into the scope, so only the reference rules of `scoped.scope` can."""
    others = "".join(
        (data / name).read_text(encoding="utf-8").lower()
        for name in ("web_orders.jsonl", "survey_responses.csv", "store_orders.csv")
    )
    cards = (data / "crm_store_loyalty.csv").read_text(encoding="utf-8").lower()
    accounts = list(csv.reader((data / "crm_eshop_accounts.csv").open(encoding="utf-8")))[1:]
    surnames = Counter(a[2].lower() for a in accounts)
    for account in (accounts[i] for i in rows):
        account_id, surname, email = account[0], account[2].lower(), account[3].lower()
        if (
            account_id.lower() not in others
            and (not email or email not in others)
            and surnames[surname] == 1
            and f"{surname}," not in cards
        ):
            return account_id
    raise AssertionError("no quiet account in the sample")


def order_naming(account_id: str, order_id: str) -> str:
    """A web order naming `account_id` under an e-mail address no other record has."""
    order = {
        "order_id": order_id,
        "account_id": account_id,
        "email": f"{order_id.lower()}@new-address.example.org",
        "placed_at": "2024-06-01T10:00:00Z",
        "status": "completed",
        "currency": "GBP",
        "subtotal": 10.0,
        "discount": 0.0,
        "total": 10.0,
        "items": [{"sku": "HM-0001", "category": "Home", "qty": 1, "unit_price": 10.0}],
    }
    return json.dumps(order) + "\n"


def an_old_account_orders_under_a_new_address(config_path: Path) -> None:
    """The order nights, where night 3 also brings an order naming an account known since night
    1 under an e-mail nobody has: only the named record rule of `scoped.scope` puts the account
    in the scope (without it the order stays a customer of its own)."""
    data = config_path.parent / "data" / "sample"
    account = quiet_account(data, range(0, 860))
    test_incremental.split_into_nights(config_path)
    with (data / "drops" / "web_orders_3.jsonl.later").open("a", encoding="utf-8") as drop:
        drop.write(order_naming(account, "W9000001"))


def an_order_comes_before_its_account(config_path: Path) -> None:
    """The CRM nights, with an order delivered on night 1 that names an account first exported
    on night 3 (night 2 estimates parameters and re-clusters everything; night 3 builds on it),
    under an e-mail nobody has: only the naming transaction rule of `scoped.scope` puts the
    order in night 3's scope (without it the order stays a customer of its own)."""
    data = config_path.parent / "data" / "sample"
    first, second = test_incremental_identity.ESHOP_ROWS[:2]
    account = quiet_account(data, range(first, second))
    with (data / "web_orders.jsonl").open("a", encoding="utf-8") as orders:
        orders.write(order_naming(account, "W9000002"))
    test_incremental_identity.write_nights(config_path)
    night_2 = data / "drops" / "eshop_2.csv.later"
    lines = night_2.read_text(encoding="utf-8").splitlines(True)
    night_2.write_text("".join(x for x in lines if not x.startswith(f"{account},")))


DEFAULT_DATE = "1985-07-09"  # ES-000001's birth date
NEWCOMERS = (
    ("Aldous", "Brackenbury"), ("Bettina", "Cromarty"), ("Cosmo", "Dunleavy"),
    ("Delphine", "Ebberson"), ("Evander", "Fairweather"), ("Florentyna", "Gascoigne"),
    ("Gideon", "Hathersage"), ("Henrietta", "Inchbald"), ("Ignatius", "Jellicoe"),
    ("Jemima", "Kettleborough"), ("Leopold", "Lumsden"), ("Marigold", "Mountjoy"),
    ("Nathaniel", "Nethercott"), ("Ottoline", "Oakenshaw"), ("Peregrine", "Pennefather"),
    ("Quentin", "Quarrington"), ("Rosalind", "Rattenbury"), ("Septimus", "Stallybrass"),
    ("Tabitha", "Tollemache"), ("Ulysses", "Underhill"), ("Valentina", "Vavasour"),
    ("Wilhelmina", "Wolstenholme"), ("Xanthe", "Yelverton"), ("Zebedee", "Zouche"),
    ("Araminta", "Blenkinsop"),
)  # fmt: skip


def a_birth_date_becomes_a_default_and_stops(config_path: Path) -> None:
    """The CRM nights, where night 3's export also holds 25 newcomers born on one day that
    accounts of earlier nights were born on too: it becomes a default date (blanked: those
    accounts' birth-date keys change, they are re-blanked) on a night that reuses the match
    parameters (it reads a neighbourhood)."""
    test_incremental_identity.write_nights(config_path)
    night_3 = config_path.parent / "data" / "sample" / "drops" / "eshop_3.csv.later"
    newcomers = "".join(
        f"ES-9{i:05d},{first},{last},{first.lower()}.{last.lower()}@example.net,,"
        f"{DEFAULT_DATE},F,,Leeds,LS{i + 1} 9ZZ,GB,2024-01-01T00:00:00,2024-01-01T00:00:00,"
        "false,false,\n"
        for i, (first, last) in enumerate(NEWCOMERS)
    )
    night_3.write_text(night_3.read_text(encoding="utf-8") + newcomers, encoding="utf-8")


SCENARIOS = {
    # new order files each night: new transactions link to existing customers
    "orders": (test_incremental.split_into_nights, test_incremental.deliver, ""),
    # new CRM records merge customers, one account changes, records leave a snapshot
    "crm": (test_incremental_identity.write_nights, test_incremental_identity.deliver, ""),
    # a loyalty card with receipts leaves: the receipts' link goes with it
    "crm-leaving": (
        crm_nights_with_a_leaving_card,
        test_incremental_identity.deliver,
        "",
    ),
    # a known account orders under a new e-mail: the reference alone links them
    "order-names-an-old-account": (
        an_old_account_orders_under_a_new_address,
        test_incremental.deliver,
        "",
    ),
    # an order names an account that arrives a night later
    "account-after-its-order": (
        an_order_comes_before_its_account,
        test_incremental_identity.deliver,
        "",
    ),
    # a birth date becomes a system default: records re-blanked
    "default-birth-date": (
        a_birth_date_becomes_a_default_and_stops,
        test_incremental_identity.deliver,
        "",
    ),
    # the same with small blocks: pairs vanish as blocks grow past the cap
    "crm-capped": (
        test_incremental_identity.write_nights,
        test_incremental_identity.deliver,
        "max_block_size = 4",
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scoped_nights_equal_reclustering_everything(tmp_path, monkeypatch, scenario):
    split, deliver, setting = SCENARIOS[scenario]
    config_path = make_project(tmp_path / "scoped")
    if setting:
        config_path.write_text(
            config_path.read_text().replace("[identity]", f"[identity]\n{setting}", 1)
        )
    split(config_path)
    # night 1 has no clusters to build on: both schemes run it alike, so the other starts
    # from a copy of it
    first = []
    run_nights(config_path, deliver, monkeypatch, False, range(1, 2), first)
    full_path = copy_of_published(config_path, tmp_path / "everything")
    results = {}
    for path, everything in ((config_path, False), (full_path, True)):
        shares = list(first)
        crossed, read = run_nights(
            path, deliver, monkeypatch, everything, range(2, NIGHTS + 1), shares
        )
        results[everything] = (identity_state(path), shares, crossed, read)

    scoped_state, shares, crossed, read = results[False]
    full_state, full_shares, _, full_read = results[True]
    assert full_shares == [1.0] * NIGHTS
    # a night that built on last night's clusters read only the neighbourhood of its changes
    # (`neighbourhood`); the others read everything
    assert read and not full_read
    # some night reused parameters and re-clustered only part of the records...
    assert any(share < 0.5 for share in shares), shares
    # ...whose links never reached outside it
    assert not any(crossed)
    for table in full_state:
        assert scoped_state[table] == full_state[table], table


def test_the_scope_holds_every_record_a_night_can_move():
    """Each seeding rule of `scoped.scope` on its own, then whole last-night components."""
    rows = [
        # kind, record id, names CRM record, e-mail key, last component
        ("customer", "ES-1", None, "e1", 100),  # 0 untouched
        ("order", "~a", "ES-1", "e1", 100),  # 1 untouched
        ("customer", "ES-2", None, "e2", 200),  # 2 named by a new order
        ("order", "~b", "ES-2", "e9", -1),  # 3 new
        ("customer", "ES-3", None, "e3", -1),  # 4 new
        ("order", "~c", "ES-3", "e7", 300),  # 5 names the new CRM record
        ("order", "~d", None, "e3", 400),  # 6 shares the new CRM record's e-mail key
        ("customer", "ES-4", None, "e4", 500),  # 7 its component lost a record
        ("customer", "ES-5", None, "e5", 600),  # 8 untouched
        ("customer", "ES-6", None, "e6", 700),  # 9 end of a changed pair
        ("customer", "ES-7", None, "e8", 700),  # 10 in 9's component
    ]
    kind, record_id, ref, email_key, component = (list(c) for c in zip(*rows, strict=True))
    std = pd.DataFrame(
        {
            "record_kind": kind,
            "source_record_id": pd.Series(record_id, dtype="str"),
            "ref_record_id": pd.Series(ref, dtype="str"),
            "std_email_key": pd.Series(email_key, dtype="str"),
        }
    )
    component = np.array(component)
    last = scoped.LastClusters(
        cluster=component.copy(),
        component=component,
        rule=np.zeros(len(rows), dtype=np.int64),
        gone_components=np.array([500]),
    )
    dirty = np.isin(np.arange(len(rows)), [3, 4])
    in_scope = scoped.scope(std, dirty, np.array([9]), last, ["std_email_key"])
    assert np.flatnonzero(in_scope).tolist() == [2, 3, 4, 5, 6, 7, 9, 10]


def test_links_crossing_the_scope_widen_it_to_whole_components():
    component = np.array([1, 1, 2, 2, 3])
    last = scoped.LastClusters(component, component, component * 0, np.zeros(0, np.int64))
    links = pd.DataFrame({"left": [1], "right": [2]})
    matched = scoped.MatchResult(links, None, 1, pd.DataFrame())
    start = np.array([True, True, False, False, False])
    assert scoped.close_over_links(start, matched, last).tolist() == [True] * 4 + [False]


def test_a_birth_date_that_becomes_a_default_re_blanks_its_records(tmp_path, monkeypatch):
    """The scenario above does what it says: ES-000001's birth date is blanked in night 3
    (its record re-blanked, not re-standardised), a night that read a neighbourhood."""
    config_path = make_project(tmp_path / "p")
    a_birth_date_becomes_a_default_and_stops(config_path)
    blanked, read, find = [], [], neighbourhood.find

    def spy_find(*args, **kwargs):
        read.append(night)
        return find(*args, **kwargs)

    monkeypatch.setattr(neighbourhood, "find", spy_find)
    for night in range(1, NIGHTS + 1):
        test_incremental_identity.deliver(config_path, night)
        run_nightly(load_config(config_path))
        db = load_config(config_path).resolve("warehouse/ccv.duckdb")
        with duckdb.connect(str(db), read_only=True) as con:
            blanked.append(
                con.execute(
                    "select birth_blanked, std_birth_date::varchar from identity_std "
                    "where source_record_id = 'ES-000001'"
                ).fetchall()
            )
    assert blanked == [[(False, DEFAULT_DATE)], [(False, DEFAULT_DATE)], [(True, DEFAULT_DATE)]]
    assert read == [3]
