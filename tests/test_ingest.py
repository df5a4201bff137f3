"""Ingest: every row read is loaded or quarantined with a readable reason; loads are idempotent."""

from __future__ import annotations

import json

import pytest

from ccv.ingest.load import IngestError, ingest
from tests.conftest import NOW, make_config

CRM = {
    "name": "crm",
    "kind": "customers",
    "path": "crm.csv",
    "format": "csv",
    "columns": {
        "source_record_id": "id",
        "first_name": "first",
        "email": "mail",
        "birth_date": "dob",
    },
    "formats": {"birth_date": "%d/%m/%Y"},
}


def run_ingest(con, tmp_path, files: dict[str, str | bytes], *sources, **sections):
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    config = make_config(tmp_path, *(sources or (CRM,)), **sections)
    return ingest(con, config, "run-1", NOW)


def quarantine(con) -> list[tuple]:
    return con.execute(
        "select row_number, line_number, field, rule, raw_value from quarantine order by all"
    ).fetchall()


def assert_accounted(results):
    for r in results:
        assert r.rows_read == r.rows_loaded + r.rows_quarantined, r


def test_valid_rows_load_typed_and_unmapped_columns_go_to_extra(con, tmp_path):
    results = run_ingest(
        con,
        tmp_path,
        {"crm.csv": "id,first,mail,dob,promo\n1,Ann,ann@example.com,05/03/1990,XMAS\n"},
    )
    assert results[0].rows_loaded == 1
    row = con.execute("select first_name, email, birth_date, extra from raw_customers").fetchone()
    # dob is day-first per the mapping's format: 5 March, not 3 May
    assert str(row[2]) == "1990-03-05"
    assert json.loads(row[3]) == {"promo": "XMAS"}


@pytest.mark.parametrize(
    ("line", "field", "rule"),
    [
        ("2,Bob,bob-at-example.com,01/01/1980", "email", "email_syntax"),  # no @
        ("2,Bob,bob@example.com,31/02/1980", "birth_date", "parse_date"),  # 31 Feb
        (
            "2,Bob,bob@example.com,01/01/2099",
            "birth_date",
            "date_out_of_range",
        ),  # born in the future
        (",Bob,bob@example.com,01/01/1980", "source_record_id", "required"),  # no key
        ("1,Bob,bob@example.com,01/01/1980", "source_record_id", "duplicate_id"),  # id reused
    ],
)
def test_invalid_rows_are_quarantined_with_field_and_rule(con, tmp_path, line, field, rule):
    content = f"id,first,mail,dob\n1,Ann,ann@example.com,05/03/1990\n{line}\n"
    results = run_ingest(con, tmp_path, {"crm.csv": content})
    assert_accounted(results)
    assert results[0].rows_loaded == 1 and results[0].rows_quarantined == 1
    (q,) = quarantine(con)
    assert q[0] == 2 and q[2] == field and rule in q[3]
    # the first occurrence of a reused id is the one that stays
    assert con.execute("select first_name from raw_customers").fetchall() == [("Ann",)]


def test_rows_the_reader_cannot_split_are_quarantined_with_their_line(con, tmp_path):
    content = 'id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,Bob\n3,"Cy\nrus",c@x.com,01/01/1990\n'
    results = run_ingest(con, tmp_path, {"crm.csv": content})
    assert_accounted(results)
    # the quoted newline is one valid record; "2,Bob" (line 3) lacks columns
    assert (results[0].rows_loaded, results[0].rows_quarantined) == (2, 1)
    (q,) = quarantine(con)
    assert q[1] == 3 and q[3].startswith("malformed_row")


def test_file_missing_mapped_columns_is_rejected_whole_and_loses_nothing(con, tmp_path):
    results = run_ingest(con, tmp_path, {"crm.csv": "id,first\n1,Ann\n2,Bob\n"})
    (r,) = results
    assert r.status == "rejected" and "'mail'" in r.message and "'dob'" in r.message
    assert r.rows_quarantined == 2 and r.rows_loaded == 0


def test_mandatory_source_failure_stops_the_run_with_a_clear_error(con, tmp_path):
    with pytest.raises(IngestError, match="crm"):
        run_ingest(con, tmp_path, {"crm.csv": "id,first\n1,Ann\n"}, CRM | {"mandatory": True})


def test_empty_and_header_only_files_load_nothing(con, tmp_path):
    for content in ("", "id,first,mail,dob\n"):
        results = run_ingest(con, tmp_path, {"crm.csv": content})
        assert results[0].rows_read == 0 and results[0].status in ("loaded", "replaced")


def test_rerun_of_same_file_loads_nothing_twice(con, tmp_path):
    files = {"crm.csv": "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n"}
    run_ingest(con, tmp_path, files)
    again = run_ingest(con, tmp_path, files)
    assert again[0].status == "unchanged" and again[0].rows_loaded == 0
    assert con.execute("select count(*) from raw_customers").fetchone()[0] == 1


def test_changed_file_replaces_the_rows_of_its_earlier_version(con, tmp_path):
    run_ingest(con, tmp_path, {"crm.csv": "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,B,,\n"})
    changed = run_ingest(con, tmp_path, {"crm.csv": "id,first,mail,dob\n1,Anne,a@x.com,\n"})
    assert changed[0].status == "replaced"
    assert con.execute("select source_record_id, first_name from raw_customers").fetchall() == [
        ("1", "Anne")
    ]


def test_orders_from_jsonl_with_a_broken_line(con, tmp_path):
    orders = {
        "name": "web",
        "kind": "orders",
        "path": "orders.jsonl",
        "format": "jsonl",
        "columns": {
            "order_id": "id",
            "email": "email",
            "ordered_at": "at",
            "status": "status",
            "net_amount": "total",
        },
        "constants": {"channel": "web"},
    }
    lines = [
        json.dumps(
            {
                "id": "W1",
                "email": "a@x.com",
                "at": "2025-06-01T14:03:22Z",
                "status": "completed",
                "total": 10.5,
                "items": [{"sku": "A"}],
            }
        ),
        '{"id": "W2", "email": ',  # truncated line
        json.dumps(
            {
                "id": "W3",
                "email": "b@x.com",
                "at": "2025-06-01T14:03:22Z",
                "status": "completed",
                "total": -3,
            }
        ),
        json.dumps(
            {
                "id": "W4",
                "email": "c@x.com",
                "at": "2025-06-01T14:03:22+02:00",
                "status": "shipped",
                "total": 1,
            }
        ),
    ]
    results = run_ingest(
        con, tmp_path, {"orders.jsonl": "\n".join(lines) + "\n"}, CRM | {"path": "none.csv"}, orders
    )
    web = results[1]
    assert_accounted(results)
    assert (web.rows_read, web.rows_loaded, web.rows_quarantined) == (4, 1, 3)
    rules = {q[3] for q in quarantine(con)}
    assert rules == {"malformed_row:invalid_json", "negative_amount", "unknown_status"}
    (ordered_at, extra) = con.execute("select ordered_at, extra from raw_orders").fetchone()
    assert str(ordered_at) == "2025-06-01 14:03:22"
    assert json.loads(extra)["items"] == '[{"sku":"A"}]'
