"""CRM records arriving over several nights resolve incrementally to what a full rebuild gives."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ccv.config import load_config
from ccv.identity import incremental
from ccv.identity.blocking import DEFAULT_RULES
from ccv.pipeline import RunSummary, run_nightly
from tests.conftest import copy_of_published, make_project, night_without_report
from tests.test_incremental import (
    CUSTOMER_TABLES,
    ORDER_TABLES,
    customer_rows,
    identity_rows,
    order_rows,
    outcome,
    rows_by_run,
    updated_tables,
)

ESHOP_ROWS = (600, 860, None)  # the snapshot export grows; None = every row
LOYALTY_ROWS = ((0, 400), (400, 550), (550, None))  # delta files: new cards only
CHANGED, DELETED = "ES-000005", "ES-000010"


def changed(line: str) -> str:
    """ES-000005 with a new e-mail, a phone and a later update time."""
    fields = line.split(",")
    fields[3], fields[4] = "lucy.n.new@example.org", "07700 900123"
    fields[12] = "2023-01-01T00:00:00"
    return ",".join(fields)


def write_nights(config_path: Path) -> None:
    """Cut both CRM files into three nights of drops (`*.later` until delivered)."""
    data = config_path.parent / "data" / "sample"
    drops = data / "drops"
    drops.mkdir()
    eshop = (data / "crm_eshop_accounts.csv").read_text(encoding="utf-8").splitlines(True)
    for night, rows in enumerate(ESHOP_ROWS, start=1):
        body = eshop[1:][:rows]
        if night >= 2:  # one account changes, and from night 3 one leaves the export
            body = [changed(x) if x.startswith(CHANGED) else x for x in body]
        if night == 3:
            body = [x for x in body if not x.startswith(DELETED)]
        (drops / f"eshop_{night}.csv.later").write_text("".join(eshop[:1] + body))
    loyalty = (data / "crm_store_loyalty.csv").read_text(encoding="utf-8").splitlines(True)
    for night, (start, end) in enumerate(LOYALTY_ROWS, start=1):
        body = loyalty[1:][start:end]
        (drops / f"loyalty_{night}.csv.later").write_text("".join(loyalty[:1] + body))
    # night 3 also re-delivers night 2's loyalty drop corrected: without its first card, which
    # leaves the CRM records altogether (a delta source keeps no deleted marker)
    body = loyalty[1:][LOYALTY_ROWS[1][0] + 1 : LOYALTY_ROWS[1][1]]
    (drops / "loyalty_2.csv.corrected").write_text("".join(loyalty[:1] + body))
    (data / "crm_eshop_accounts.csv").unlink()
    (data / "crm_store_loyalty.csv").unlink()
    text = config_path.read_text()
    text = text.replace('"data/sample/crm_eshop_accounts.csv"', '"data/sample/drops/eshop_*.csv"')
    text = text.replace('"data/sample/crm_store_loyalty.csv"', '"data/sample/drops/loyalty_*.csv"')
    config_path.write_text(text)


def deliver(config_path: Path, night: int) -> None:
    drops = config_path.parent / "data" / "sample" / "drops"
    for later in drops.glob(f"*_{night}.csv.later"):
        later.rename(later.with_suffix(""))
    if night == 3:
        (drops / "loyalty_2.csv.corrected").replace(drops / "loyalty_2.csv")


def identity_runs(config_path: Path) -> list[tuple]:
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select standardised, removed, candidate_pairs, pairs_compared, params "
            "from identity_runs order by run_id"
        ).fetchall()


def pair_store(config_path: Path) -> set[tuple]:
    """The persisted candidate pairs by record key, with their rules and comparison levels
    (checking first that no stored pair names a record that is gone)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        ((dangling,),) = con.execute(
            """
            select count(*) from match_pairs p
            where not exists (select 1 from identity_std s where s.record_no = p.left_no)
               or not exists (select 1 from identity_std s where s.record_no = p.right_no)
            """
        ).fetchall()
        assert dangling == 0
        rows = con.execute(
            """
            select l.source || ':' || l.source_record_id, r.source || ':' || r.source_record_id,
                   p.* exclude (left_no, right_no)
            from match_pairs p
            join identity_std l on l.record_no = p.left_no
            join identity_std r on r.record_no = p.right_no
            """
        ).fetchall()
    return {(*sorted(row[:2]), *row[2:]) for row in rows}


def order_moves(config_path: Path) -> int:
    """How many orders the last night logged as having changed customer."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "select count(*) from model_changes where model = 'customer_xref'"
        ).fetchall()[0][0]


def eshop_drops(config_path: Path) -> Path:
    """Make the sample's e-shop export a drop (`eshop_1.csv`) that later drops replace; the
    drops folder."""
    data = config_path.parent / "data" / "sample"
    (data / "drops").mkdir()
    shutil.move(data / "crm_eshop_accounts.csv", data / "drops" / "eshop_1.csv")
    config_path.write_text(
        config_path.read_text().replace(
            '"data/sample/crm_eshop_accounts.csv"', '"data/sample/drops/eshop_*.csv"'
        )
    )
    return data / "drops"


def rebuilt_alongside(config_path: Path, tmp_path: Path) -> tuple[Path, RunSummary]:
    """A full rebuild of the same inputs in a project of its own: its config path and work."""
    rebuild = tmp_path / "full" / "ccv.toml"
    shutil.copytree(config_path.parent / "data", rebuild.parent / "data")
    shutil.copy(config_path, rebuild)
    return rebuild, run_nightly(load_config(rebuild), full_refresh=True)


def test_crm_records_over_nights_equal_a_full_rebuild(tmp_path, monkeypatch):
    nightly = make_project(tmp_path / "nightly")
    write_nights(nightly)
    works = []
    # the nights standardise and read back their records in many small chunks, the full
    # rebuild in one: chunks must not change anything
    monkeypatch.setattr(incremental, "RECORDS_CHUNK", 97)
    moved = []  # orders whose customer changed, as logged for the core `orders` update
    consents_tonight = []  # consent events' crosswalk rows written tonight, and all of them
    for night in (1, 2, 3):
        deliver(nightly, night)
        works.append(night_without_report(load_config(nightly)).resolve.work)
        assert updated_tables(nightly) >= (set() if night == 1 else ORDER_TABLES | CUSTOMER_TABLES)
        moved.append(order_moves(nightly))
        consents = rows_by_run(nightly)["consent crosswalk"]
        consents_tonight.append((consents.get(max(consents), 0), sum(consents.values())))
    monkeypatch.undo()
    full, rebuild = rebuilt_alongside(nightly, tmp_path)
    rebuilt = rebuild.resolve.work

    assert outcome(nightly) == outcome(full)
    # new CRM records merge customers that earlier orders belong to: those orders are updated
    assert moved[0] == 0 and moved[1] > 0
    # the consent events of new and changed CRM records are rewritten, not all of them
    assert [0 < tonight < total for tonight, total in consents_tonight[1:]] == [True, True]
    assert order_rows(nightly) == order_rows(full)
    # merged, changed and deleted CRM records: the customers updated by key are a rebuild's
    assert customer_rows(nightly) == customer_rows(full)
    # merged, changed and deleted records: the identity tables written by key are a rebuild's
    assert identity_rows(nightly) == identity_rows(full)
    # the persisted blocking result is the full run's: same pairs, rules and levels
    assert pair_store(nightly) == pair_store(full)

    first, second, third = works
    # night 1 standardises everything; night 2 its new records and the changed account: its old
    # version is removed (its opt-in consent events are no identity records of their own: they
    # follow the account); night 3 only its new records: the 11 + 81 new CRM rows; it
    # removes the card its corrected drop no longer holds
    assert first.standardised == first.records and first.removed == 0
    assert second.removed == 1
    assert third.removed == 1
    new_crm_rows = (871 - 860) + (631 - 550)  # some may be quarantined
    assert third.standardised == third.records - second.records + 1
    assert new_crm_rows - 5 <= third.standardised <= new_crm_rows
    # night 1 has fewer than 1000 valid CRM records (shipped parameters), night 2 enough for
    # EM; night 3 grew them by 7 % (< reestimate_growth 20 %) and reuses night 2's estimate
    assert [w.params for w in works] == ["shipped", "estimated", "reused"]
    assert rebuilt.params == "estimated"
    # every pair of the full rebuild exists tonight, yet only the delta's pairs were compared
    assert third.candidate_pairs == rebuilt.candidate_pairs
    assert 0 < third.pairs_compared < third.candidate_pairs / 4
    assert rebuilt.pairs_compared == rebuilt.candidate_pairs
    # and users see the same numbers in the warehouse
    assert identity_runs(nightly)[-1] == (
        third.standardised,
        third.removed,
        third.candidate_pairs,
        third.pairs_compared,
        "reused",
    )


def test_incremental_off_recomputes_everything(tmp_path):
    config_path = make_project(tmp_path / "p")
    config_path.write_text(
        config_path.read_text().replace("[identity]", "[identity]\nincremental = false", 1)
    )
    night_without_report(load_config(config_path))
    again = night_without_report(load_config(config_path)).resolve.work
    assert again.standardised == again.records
    assert again.pairs_compared == again.candidate_pairs
    assert again.params == "estimated"


def test_blocks_crossing_the_size_cap_over_nights_store_a_full_rebuilds_pairs(tmp_path):
    """With a small block cap, blocks grow past it (and their pairs lose that rule while other
    rules keep them) as records arrive: the pairs stored by key are still a rebuild's."""
    nightly = make_project(tmp_path / "nightly")
    nightly.write_text(
        nightly.read_text().replace("[identity]", "[identity]\nmax_block_size = 4", 1)
    )
    write_nights(nightly)
    for night in (1, 2, 3):
        deliver(nightly, night)
        night_without_report(load_config(nightly))
    full, _ = rebuilt_alongside(nightly, tmp_path)

    db = load_config(nightly).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        oversized = con.execute("select count(*) from oversized_blocks").fetchall()[0][0]
    assert oversized > 0  # the cap is reached: blocks were reported instead of expanded
    assert pair_store(nightly) == pair_store(full)
    assert outcome(nightly) == outcome(full)


def test_a_changed_customer_source_recomputes_the_identity_state(tmp_path, published_sample):
    """Which CRM source a transaction source names records of decides its deterministic links,
    so the persisted state (and the tables written by key) cannot carry over such a change."""
    config_path = copy_of_published(published_sample, tmp_path / "p")
    text = config_path.read_text()
    old = 'format = "csv"\ncustomer_source = "eshop_accounts"'
    assert text.count(old) == 1  # the surveys source
    config_path.write_text(text.replace(old, 'format = "csv"\ncustomer_source = "store_loyalty"'))
    again = night_without_report(load_config(config_path)).resolve.work
    assert again.standardised == again.records
    assert again.pairs_compared == again.candidate_pairs


def test_a_changed_record_leaves_none_of_its_pairs_behind(tmp_path):
    """A CRM record whose phone changes is standardised again under a new record number: its
    stored pairs go, also those where it is the smaller-numbered end and the other record did
    not change, and the regenerated ones come; the stored pairs are a rebuild's."""
    nightly = make_project(tmp_path / "nightly")
    drops = eshop_drops(nightly)
    night_without_report(load_config(nightly))
    db = load_config(nightly).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        ((account,),) = con.execute(
            """
            select min(l.source_record_id) from match_pairs p
            join identity_std l on l.record_no = p.left_no
            where l.source = 'eshop_accounts'
            """
        ).fetchall()
    rows = list(csv.reader((drops / "eshop_1.csv").open(encoding="utf-8", newline="")))
    phone = rows[0].index("Phone")
    changed = [
        [*r[:phone], "07700 900456", *r[phone + 1 :]] if r[0] == account else r for r in rows
    ]
    with (drops / "eshop_2.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(changed)
    second = night_without_report(load_config(nightly)).resolve.work
    full, rebuilt = rebuilt_alongside(nightly, tmp_path)

    assert account is not None and second.standardised >= 1
    assert second.candidate_pairs == rebuilt.resolve.work.candidate_pairs
    assert pair_store(nightly) == pair_store(full)


def record_no(config_path: Path, source_record_id: str) -> int:
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        ((number, top),) = con.execute(
            "select max(record_no) filter (where source_record_id = ?), max(record_no) "
            "from identity_std",
            [source_record_id],
        ).fetchall()
    assert number == top, "the test needs the record to hold the highest number"
    return number


def test_the_highest_numbered_record_changing_frees_its_number_and_its_pairs(tmp_path):
    """A new account that duplicates Raj (ES-000001) arrives on night 2 and takes the highest
    record number, with stored pairs to Raj. On night 3 its phone changes: its old state goes
    with the highest number, and the new state is numbered from there, taking that same number
    again. The stored pairs by record key, with their levels, are a rebuild's: none of the old
    state's pairs is read as the new state's."""
    nightly = make_project(tmp_path / "nightly")
    drops = eshop_drops(nightly)
    night_without_report(load_config(nightly))
    export = (drops / "eshop_1.csv").read_text(encoding="utf-8")
    raj = next(line for line in export.splitlines() if line.startswith("ES-000001,"))
    twin = raj.replace("ES-000001,", "ES-999999,", 1)
    (drops / "eshop_2.csv").write_text(export + twin + "\n", encoding="utf-8")
    night_without_report(load_config(nightly))
    number = record_no(nightly, "ES-999999")
    twin_pairs = {p for p in pair_store(nightly) if "eshop_accounts:ES-999999" in p[:2]}
    moved = twin.replace("0044 7875 479145", "07700 900789")
    (drops / "eshop_3.csv").write_text(export + moved + "\n", encoding="utf-8")
    third = night_without_report(load_config(nightly)).resolve.work
    full, rebuilt = rebuilt_alongside(nightly, tmp_path)

    assert ("eshop_accounts:ES-000001", "eshop_accounts:ES-999999") in {p[:2] for p in twin_pairs}
    assert record_no(nightly, "ES-999999") == number
    assert third.candidate_pairs == rebuilt.resolve.work.candidate_pairs
    assert pair_store(nightly) == pair_store(full)
    assert not twin_pairs & pair_store(nightly)  # the phone level of each of its pairs changed


def test_the_highest_numbered_record_leaving_takes_its_pairs_along(tmp_path, published_sample):
    """A loyalty card that duplicates Ava's (2900010000350) arrives on night 2 and takes the
    highest record number, with stored pairs. On night 3 the delta file is re-delivered
    without it: the record is gone and no new record takes its number, so the stored pairs
    name a number above every record of the night (pair keys must not alias). The stored
    pairs are a rebuild's."""
    nightly = copy_of_published(published_sample, tmp_path / "nightly")
    loyalty = nightly.parent / "data" / "sample" / "crm_store_loyalty.csv"
    export = loyalty.read_text(encoding="utf-8")
    ava = next(line for line in export.splitlines() if line.startswith("2900010000350;"))
    loyalty.write_text(export + ava.replace("2900010000350;", "2900019999999;") + "\n")
    night_without_report(load_config(nightly))
    number = record_no(nightly, "2900019999999")
    twin_pairs = {p[:2] for p in pair_store(nightly) if "store_loyalty:2900019999999" in p[:2]}
    loyalty.write_text(export, encoding="utf-8")
    third = night_without_report(load_config(nightly)).resolve.work
    full, rebuilt = rebuilt_alongside(nightly, tmp_path)

    assert twin_pairs and number > 0
    assert third.removed >= 1 and third.standardised == 0
    assert third.candidate_pairs == rebuilt.resolve.work.candidate_pairs
    assert pair_store(nightly) == pair_store(full)


QUENNELLS = [  # one surname and birth date; Alice and Bob also share an e-mail address
    (1, "Alice", "q.pair@example.net", "AB1 1AA", "Aberdeen"),
    (2, "Bob", "q.pair@example.net", "BA2 2BB", "Bath"),
    (3, "Carl", "carl.q3@example.net", "CH3 3CC", "Chester"),
    (4, "Dora", "dora.q4@example.net", "DD4 4DD", "Dundee"),
    (5, "Eric", "eric.q5@example.net", "EX5 5EE", "Exeter"),
]


def quennell_rows(eric_born: str) -> str:
    return "".join(
        f"ES-90000{i},{first},Quennell,{email},07700 90000{i},"
        f"{eric_born if first == 'Eric' else '1931-02-03'},,1 High St,{city},{postcode},GB,"
        "2026-01-01T00:00:00,2026-01-01T00:00:00,false,false,\n"
        for i, first, email, postcode, city in QUENNELLS
    )


def test_a_block_shrinking_under_the_cap_adds_its_rule_to_stored_pairs(tmp_path):
    """Five records share a surname and birth date, over a cap of four: that block is not
    expanded, and Alice and Bob are a pair by their shared e-mail alone. When Eric's birth
    date changes, the block holds four and is expanded: the stored pair of Alice and Bob gains
    the rule (found among the stored pairs, not added twice), as in a rebuild."""
    nightly = make_project(tmp_path / "nightly")
    nightly.write_text(
        nightly.read_text().replace("[identity]", "[identity]\nmax_block_size = 4", 1)
    )
    drops = eshop_drops(nightly)
    export = (drops / "eshop_1.csv").read_text(encoding="utf-8")
    (drops / "eshop_1.csv").write_text(export + quennell_rows("1931-02-03"), encoding="utf-8")
    night_without_report(load_config(nightly))
    (drops / "eshop_2.csv").write_text(export + quennell_rows("1962-07-08"), encoding="utf-8")
    second = night_without_report(load_config(nightly)).resolve.work
    full, rebuilt = rebuilt_alongside(nightly, tmp_path)

    alice_bob = [
        p
        for p in pair_store(nightly)
        if p[:2] == ("eshop_accounts:ES-900001", "eshop_accounts:ES-900002")
    ]
    surname_dob = [rule.name for rule in DEFAULT_RULES].index("surname_dob")
    assert len(alice_bob) == 1 and alice_bob[0][2] >> surname_dob & 1
    assert second.candidate_pairs == rebuilt.resolve.work.candidate_pairs
    assert pair_store(nightly) == pair_store(full)


def test_reading_a_stored_pair_of_a_gone_record_fails_loudly():
    """A pair left in match_pairs for a record that is gone would be read back with a
    position of -1 (the last record): the read refuses instead."""
    con = duckdb.connect()
    levels = ", ".join(f"0::tinyint as {c}" for c in incremental.LEVEL_COLUMNS)
    con.execute(
        f"create table match_pairs as select 0 as left_no, 2 as right_no, 1 as rules, {levels}"
    )
    kept = incremental.StoredPairs(con, np.array([0, 1, 2]), np.array([0, 1, 2]), DEFAULT_RULES)
    assert kept.read()[["left", "right"]].values.tolist() == [[0, 2]]
    gone = incremental.StoredPairs(con, np.array([0, 1, -1]), np.array([0, 1]), DEFAULT_RULES)
    with pytest.raises(RuntimeError, match="gone"):
        gone.read()
