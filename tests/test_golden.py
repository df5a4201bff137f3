"""Golden record survivorship: each rule picks the value a data steward would, with provenance."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest

from ccv.config import SurvivorshipConfig, load_config
from ccv.identity import golden as golden_module
from ccv.identity.golden import build_golden

T0 = dt.datetime(2025, 1, 1)


def warehouse(records: list[dict]) -> duckdb.DuckDBPyConnection:
    """identity_records and stg_customers for records of one customer C1."""
    frame = pd.DataFrame(records)
    frame["customer_id"] = "C1"
    frame["is_deleted"] = frame.get("is_deleted", pd.Series(False, index=frame.index))
    frame["is_deleted"] = frame["is_deleted"].fillna(False).astype(bool)
    for column in (
        "first_name",
        "last_name",
        "email",
        "phone",
        "postcode",
        "loyalty_id",
        "gender",
        "address_line",
        "city",
        "region",
        "country",
        "birth_date",
        "email_opt_in",
        "sms_opt_in",
    ):
        if column not in frame:
            frame[column] = None
    con = duckdb.connect()
    con.register("f", frame)
    con.execute(
        "create table identity_records as select source, source_record_id, record_kind, "
        "customer_id, 1 as transactions, observed_at, observed_at as first_observed_at, "
        "first_name, last_name, email, phone, "
        "birth_date::date as birth_date, postcode, loyalty_id from f"
    )
    con.execute(
        "create table stg_customers as select source, source_record_id, gender, "
        "address_line, city, region, country, email_opt_in::boolean as email_opt_in, "
        "sms_opt_in::boolean as sms_opt_in, is_deleted::boolean as is_deleted "
        "from f where record_kind = 'customer'"
    )
    return con


def crm(source: str, rid: str, days: int, **values) -> dict:
    return {
        "source": source,
        "source_record_id": rid,
        "record_kind": "customer",
        "observed_at": T0 + dt.timedelta(days=days),
        **values,
    }


def golden(con, survivorship=None) -> dict[str, tuple]:
    build_golden(con, survivorship or SurvivorshipConfig())
    rows = con.execute(
        "select attribute, value, source_record_id, supporting_records from customer_attributes"
    ).fetchall()
    return {a: (v, rid, n) for a, v, rid, n in rows}


def test_most_frequent_name_beats_a_recent_typo():
    con = warehouse(
        [
            crm("a", "1", 0, first_name="Katherine"),
            crm("b", "2", 5, first_name="Katherine"),
            crm("a", "3", 9, first_name="Kahterine"),  # newest, but a typo only one record has
        ]
    )
    assert golden(con)["first_name"][0] == "Katherine"
    assert golden(con)["first_name"][2] == 2  # two records support it


def test_spellings_of_one_name_support_it_and_the_best_written_is_shown():
    """Two CRM records of Ann Robinson: "ROBINSON" and "Robinson" are one surname, so the newer
    typo "Robinsoon" (one record) loses; the golden record shows the mixed-case spelling and
    names its record. A surname known only in capitals stays as delivered."""
    con = warehouse(
        [
            crm("a", "1", 0, last_name="Robinson", city="leeds"),
            crm("b", "2", 5, last_name="ROBINSON", city="LEEDS"),
            crm("a", "3", 9, last_name="Robinsoon", city="Leeds"),
        ]
    )
    values = golden(con)
    assert values["last_name"] == ("Robinson", "1", 2)
    # most recent city: the same place in three spellings, shown as written best
    assert values["city"] == ("Leeds", "3", 3)
    only = warehouse([crm("a", "1", 0, last_name="AHMED"), crm("b", "2", 5, last_name="ahmed")])
    assert golden(only)["last_name"] == ("ahmed", "2", 2)  # neither well written: the newer


def test_a_name_with_its_accents_is_shown_before_one_without():
    con = warehouse(
        [
            crm("a", "1", 0, last_name="Müller", first_name="José"),
            crm("b", "2", 5, last_name="Muller", first_name="JOSÉ"),
        ]
    )
    values = golden(con)
    assert values["last_name"] == ("Müller", "1", 2)
    assert values["first_name"] == ("José", "1", 2)  # mixed case first, then accents


def test_other_attributes_keep_their_values_apart():
    """Only names and places are spelled: an e-mail or a postcode differing in case is another
    value (both come standardised; a loyalty id is an identifier, not a name)."""
    con = warehouse(
        [
            crm("a", "1", 0, loyalty_id="ab12"),
            crm("b", "2", 5, loyalty_id="AB12"),
        ]
    )
    assert golden(con)["loyalty_id"] == ("AB12", "2", 1)


def test_a_deleted_record_gives_a_value_only_where_no_live_record_has_one():
    con = warehouse(
        [
            crm("a", "1", 0, email="ann@old.example", first_name="Ann"),
            # deleted from its CRM's last snapshot: newest, but its e-mail is a closed account
            crm("b", "2", 9, email="ann@closed.example", phone="+447700900001", is_deleted=True),
        ]
    )
    values = golden(con)
    assert values["email"][0] == "ann@old.example"  # the live record's, though older
    assert values["phone"] == ("+447700900001", "2", 1)  # nobody live has a phone: kept


def test_most_recent_address_wins_because_people_move():
    con = warehouse(
        [
            crm("a", "1", 0, address_line="1 Old Road"),
            crm("a", "2", 0, address_line="1 Old Road"),
            crm("b", "3", 30, address_line="9 New Street"),
        ]
    )
    value, rid, _ = golden(con)["address_line"]
    assert (value, rid) == ("9 New Street", "3")


def test_verified_email_beats_an_unused_newer_one():
    con = warehouse(
        [
            crm("a", "1", 0, email="used@example.com"),
            crm("a", "2", 10, email="new@example.com"),  # newer, but never used to buy
            {
                "source": "web",
                "source_record_id": "W1",
                "record_kind": "order",
                "observed_at": T0,
                "email": "used@example.com",
            },
        ]
    )
    assert golden(con)["email"][0] == "used@example.com"


def test_source_priority_rule_and_tie_break():
    records = [
        crm("store", "1", 10, phone="+447700900001"),
        crm("shop", "2", 0, phone="+447700900002"),
    ]
    rules = SurvivorshipConfig(
        source_priority=["shop", "store"], rules={"phone": "source_priority"}
    )
    # the trusted source wins although its record is older
    assert golden(warehouse(records), rules)["phone"][0] == "+447700900002"
    # with the default rule the tie between two single values goes to the most recent
    assert golden(warehouse(records))["phone"][0] == "+447700900001"


def test_longest_rule_keeps_the_most_complete_value():
    con = warehouse([crm("a", "1", 9, first_name="K"), crm("a", "2", 0, first_name="Katherine")])
    rules = SurvivorshipConfig(rules={"first_name": "longest"})
    assert golden(con, rules)["first_name"][0] == "Katherine"


def test_missing_values_never_survive_and_opt_ins_follow_recency():
    con = warehouse(
        [
            crm("a", "1", 0, email_opt_in=True, gender="F"),
            crm("a", "2", 5, email_opt_in=False, gender=None),  # opted out later
        ]
    )
    result = golden(con)
    assert result["email_opt_in"][0] == "false"
    assert result["gender"][0] == "F"  # a NULL is not a value


def test_unknown_attribute_in_rules_is_a_config_error():
    with pytest.raises(ValueError, match="not a golden-record attribute"):
        SurvivorshipConfig(rules={"shoe_size": "longest"})


def test_provenance_ties_go_to_the_smallest_record_key_and_name_one_record():
    # the same e-mail on an order and on the CRM record, observed at the same moment in one
    # source: the provenance must not depend on how DuckDB's threads meet the rows
    order = {
        "source": "a",
        "source_record_id": "~0order",
        "record_kind": "order",
        "observed_at": T0,
        "email": "ann@example.com",
        "phone": "+447700900001",
    }
    records = [order, crm("a", "9", 0, email="ann@example.com", phone="+447700900001")]
    for shuffled in (records, records[::-1]):
        for _ in range(3):
            con = warehouse(shuffled)
            con.execute("set threads = 4")
            build_golden(con, SurvivorshipConfig())
            rows = con.execute(
                "select attribute, source, source_record_id from customer_attributes"
            ).fetchall()
            provenance = {a: (s, rid) for a, s, rid in rows}
            assert provenance["email"] == ("a", "9")  # record key "9" sorts before "~0order"
            assert provenance["phone"] == ("a", "9")


def two_customers() -> duckdb.DuckDBPyConnection:
    """C1 and C2, two CRM records each, built in full once."""
    records = [
        crm("a", "1", 0, first_name="Ann", city="Leeds"),
        crm("a", "2", 5, first_name="Ann", city="York"),
        crm("b", "3", 0, first_name="Bob", city="Hull"),
        crm("b", "4", 9, first_name="Rob", city="Bath", gender="m"),
    ]
    con = warehouse(records)
    con.execute("update identity_records set customer_id = 'C2' where source = 'b'")
    build_golden(con, SurvivorshipConfig())
    return con


def rows_by_customer(con) -> dict[str, set]:
    rows = con.execute(
        "select customer_id, rowid, attribute, value, source_record_id from customer_attributes"
    ).fetchall()
    out: dict[str, set] = {}
    for customer, *row in rows:
        out.setdefault(customer, set()).add(tuple(row))
    return out


def test_an_incremental_build_rewrites_only_customers_whose_records_changed():
    con = two_customers()
    before = rows_by_customer(con)
    # C2's newer record moves and a CRM-only attribute changes; C1 is untouched; C3 is new
    con.execute(
        "update identity_records set observed_at = observed_at + interval 30 day "
        "where source_record_id = '3'"
    )
    con.execute("update stg_customers set gender = 'x' where source_record_id = '4'")
    con.execute(
        "insert into identity_records by name select 'c' as source, '5' as source_record_id, "
        "'customer' as record_kind, 'C3' as customer_id, 1 as transactions, "
        "timestamp '2025-02-01' as observed_at, 'Cy' as first_name"
    )
    con.execute(
        "insert into stg_customers (source, source_record_id, is_deleted) values ('c', '5', false)"
    )
    build_golden(con, SurvivorshipConfig(), incremental=True)
    after = rows_by_customer(con)
    assert after["C1"] == before["C1"]  # same rows, same row ids: not rewritten
    assert {r[0] for r in after["C2"]}.isdisjoint({r[0] for r in before["C2"]})  # rewritten
    assert ("gender", "x", "4") in {r[1:] for r in after["C2"]}
    assert ("city", "Hull", "3") in {r[1:] for r in after["C2"]}  # now the most recent
    assert ("first_name", "Cy", "5") in {r[1:] for r in after["C3"]}
    incremental = con.execute("select * from customer_attributes").fetchall()
    build_golden(con, SurvivorshipConfig())  # the full build of the same inputs
    assert sorted(incremental, key=repr) == sorted(
        con.execute("select * from customer_attributes").fetchall(), key=repr
    )


def test_an_incremental_build_drops_customers_that_no_longer_exist():
    con = two_customers()
    con.execute("update identity_records set customer_id = 'C1' where source = 'b'")  # merged
    build_golden(con, SurvivorshipConfig(), incremental=True)
    customers = con.execute("select distinct customer_id from customer_attributes").fetchall()
    assert customers == [("C1",)]
    incremental = sorted(con.execute("select * from customer_attributes").fetchall(), key=repr)
    build_golden(con, SurvivorshipConfig())
    full = sorted(con.execute("select * from customer_attributes").fetchall(), key=repr)
    assert incremental == full
    assert ("first_name", "Ann") in {(r[1], r[2]) for r in full}  # two records of four agree


def test_a_whole_build_in_parts_of_the_customers_equals_one_pass(
    published_sample, tmp_path, monkeypatch
):
    """A whole build runs over a part of the customers at a time (bounded memory at a million
    customers); the sample's records in parts of 500 give the rows one pass gives."""
    db = tmp_path / "copy.duckdb"
    shutil.copy(load_config(published_sample).resolve("warehouse/ccv.duckdb"), db)
    con = duckdb.connect(str(db))
    ((records,),) = con.execute("select count(*) from identity_records").fetchall()
    build_golden(con, SurvivorshipConfig())  # one pass: fewer records than a part
    one_pass = sorted(con.execute("select * from customer_attributes").fetchall(), key=repr)
    parts = []
    real_sql = golden_module.golden_sql

    def spy(survivorship, customers=None, part=None):
        parts.append(part)
        return real_sql(survivorship, customers, part)

    monkeypatch.setattr(golden_module, "GOLDEN_PART_RECORDS", 500)
    monkeypatch.setattr(golden_module, "golden_sql", spy)
    build_golden(con, SurvivorshipConfig())
    in_parts = sorted(con.execute("select * from customer_attributes").fetchall(), key=repr)
    con.close()
    assert records > 2_000
    assert len([p for p in parts if p is not None]) == -(-records // 500)
    assert in_parts == one_pass and len(one_pass) > records
