"""Bad input, one line of intent per case: each file either loads or is quarantined with a rule.

For every case: the run does not crash, rows read = loaded + quarantined, the quarantine holds
exactly the expected rules, and `withheld_values` the rules of values withheld from rows that
loaded (a bad e-mail or birth date, `ccv.ingest.withheld`). A case names its source (`CRM`,
`ORDERS`, `SURVEYS`, `WEB`), the files to write (bytes; `None` makes a directory), what must load
and be quarantined, and the rules.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field

import pandas as pd
import pytest

from ccv.identity.standardize import normalize_phone
from ccv.ingest.load import ingest
from tests.conftest import NOW, WEB, make_config

CRM = {
    "name": "crm",
    "kind": "customers",
    "path": "in.csv",
    "format": "csv",
    "columns": {
        "source_record_id": "id",
        "first_name": "first",
        "email": "mail",
        "birth_date": "dob",
        "phone": "tel",
    },
    "formats": {"birth_date": "%d/%m/%Y"},
}
ORDERS = {
    "name": "shop",
    "kind": "orders",
    "path": "in.csv",
    "format": "csv",
    "columns": {
        "order_id": "id",
        "ordered_at": "at",
        "status": "status",
        "gross_amount": "gross",
        "discount_amount": "discount",
        "net_amount": "net",
    },
    "constants": {"channel": "store"},
}
SURVEYS = {
    "name": "nps",
    "kind": "surveys",
    "path": "in.csv",
    "format": "csv",
    "columns": {"response_id": "id", "submitted_at": "at", "nps": "nps", "csat": "csat"},
}

CRM_HEAD = "id,first,mail,dob,tel\n"
ANN = "1,Ann,ann@x.com,05/03/1990,07911 123456\n"
ORD_HEAD = "id,at,status,gross,discount,net\n"
O1 = "O1,2025-06-01T10:00:00,completed,10.00,1.00,9.00\n"
SRV_HEAD = "id,at,nps,csat\n"
GARBAGE = random.Random(3).randbytes(4000)
GARBAGE_LINES = sum(1 for line in GARBAGE.split(b"\n") if line.strip())


def crm(*rows: str, head: str = CRM_HEAD) -> bytes:
    return (head + "".join(rows)).encode()


def orders(*rows: str) -> bytes:
    return (ORD_HEAD + "".join(rows)).encode()


def surveys(*rows: str) -> bytes:
    return (SRV_HEAD + "".join(rows)).encode()


@dataclass(frozen=True)
class Case:
    source: dict
    content: bytes | None
    loaded: int
    quarantined: int
    rules: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    message: str | None = None  # a substring of the file's ingest message
    withheld: tuple[str, ...] = ()  # rules in withheld_values (the rows loaded)


CASES = {
    # --- files the reader must cope with -------------------------------------------------------
    "truncated_last_line": Case(CRM, crm(ANN, "2,Bo"), 1, 1, ("malformed_row:missing_columns",)),
    "wrong_delimiter": Case(
        CRM, crm(ANN.replace(",", ";"), head=CRM_HEAD.replace(",", ";")), 0, 1,
        ("file_rejected",), message="'first', 'mail', 'dob', 'tel'",
    ),
    "latin1_declared_utf8": Case(
        CRM, crm(ANN).replace(b"Ann", "Zoë".encode("latin-1")) + crm("2,Bo,b@x.com,,\n", head=""),
        1, 1, ("malformed_row:invalid_encoding",),
    ),
    "latin1_declared": Case(
        CRM, ANN.replace("Ann", "Zoë").join([CRM_HEAD, ""]).encode("latin-1"), 1, 0,
        options={"csv": {"encoding": "latin-1"}},
    ),
    "utf16_declared": Case(
        CRM, (CRM_HEAD + ANN).encode("utf-16"), 1, 0, options={"csv": {"encoding": "utf-16"}}
    ),
    "utf8_bom": Case(CRM, b"\xef\xbb\xbf" + crm(ANN), 1, 0),
    "crlf_line_ends": Case(CRM, crm(ANN, "2,Bo,b@x.com,,\n").replace(b"\n", b"\r\n"), 2, 0),
    "quoted_newline": Case(CRM, crm('1,"Ann\nMarie",a@x.com,,\n'), 1, 0),
    "unterminated_quote": Case(
        CRM, crm(ANN, '2,"Bo,b@x.com,,\n', "3,Cy,c@x.com,,\n"), 1, 1,
        ("malformed_row:unquoted_value",),
    ),
    "binary_garbage": Case(CRM, GARBAGE, 0, GARBAGE_LINES, ("malformed_row:unreadable_file",)),
    "tsv": Case(CRM, crm(ANN, head=CRM_HEAD).replace(b",", b"\t"), 1, 0,
                options={"csv": {"delimiter": "\t"}}),
    "header_only": Case(CRM, crm(), 0, 0),
    "empty_file": Case(CRM, b"", 0, 0),
    "null_bytes": Case(CRM, crm(ANN.replace("Ann", "A\x00nn")), 1, 0),
    "huge_cell_1mb": Case(CRM, crm(ANN.replace("Ann", "A" * (1 << 20))), 1, 0),
    # --- columns ------------------------------------------------------------------------------
    "duplicated_header": Case(CRM, crm(ANN.strip() + ",X\n", head=CRM_HEAD.strip() + ",first\n"),
                              1, 0),
    "extra_columns": Case(CRM, crm(ANN.strip() + ",XMAS\n", head=CRM_HEAD.strip() + ",promo\n"),
                          1, 0),
    "missing_columns": Case(CRM, b"id,first\n1,Ann\n", 0, 1, ("file_rejected",),
                            message="'mail', 'dob', 'tel'"),
    # --- values -------------------------------------------------------------------------------
    "unparseable_date": Case(CRM, crm(ANN, "2,Bo,b@x.com,yesterday,\n"), 2, 0,
                             withheld=("parse_date",)),
    "date_31_feb": Case(CRM, crm(ANN, "2,Bo,b@x.com,31/02/1990,\n"), 2, 0,
                        withheld=("parse_date",)),
    "dayfirst_flag": Case(CRM, crm("1,Ann,a@x.com,05-03-1990,\n"), 1, 0,
                          options={"formats": {}, "dayfirst": True}),
    "email_without_at": Case(CRM, crm(ANN, "2,Bo,bo.example.com,,\n"), 2, 0,
                             withheld=("email_syntax",)),
    # a row with a row rule's failure is quarantined whole, its withholdable faults listed too
    "email_and_key_missing": Case(CRM, crm(ANN, ",Bo,bo.example.com,yesterday,\n"), 1, 1,
                                  ("required", "email_syntax", "parse_date")),
    "email_at_spelled_out": Case(
        CRM, crm(ANN, "2,Bo,bo at example.com,,\n", "3,Cy,cy (AT) example dot com,,\n",
                 "4,Di,di @ x.com,,\n", "5,Ed,ed@@x.com,,\n", '6,Fay,"fay@gmail,com",,\n',
                 '7,Gus,"gus at mail,co,uk",,\n', "8,Hal,Hal Roe <hal@x.com>,,\n",
                 '9,Ivy,"""Roe, Ivy"" <ivy@x.com>",,\n', "10,Jo,mailto:jo@x.com,,\n"), 10, 0,
    ),
    "email_forbidden_characters": Case(
        CRM, crm(ANN, '2,Bo,"bo,smith@x.com",,\n', "3,Cy,<cy@x.com>,,\n", "4,Di,di;x@y.com,,\n",
                 '5,Ed,"ed""s@x.com",,\n', "6,Fay,fay(x)@y.com,,\n"), 6, 0,
        withheld=("email_syntax",),
    ),
    "email_at_spelled_out_still_invalid": Case(
        CRM, crm(ANN, "2,Bo,bo at example,,\n", "3,Cy,cy at home@x.com,,\n",
                 '4,Ed,"ed@x.com,fay@y.com",,\n'), 4, 0,
        withheld=("email_syntax",),
    ),
    "duplicate_id_in_file": Case(CRM, crm(ANN, ANN), 1, 1, ("duplicate_id",)),
    "missing_key": Case(CRM, crm(ANN, ",Bo,b@x.com,,\n"), 1, 1, ("required",)),
    "excel_mangled_phone": Case(CRM, crm(ANN.replace("07911 123456", "4.47E+11")), 1, 0),
    "birth_in_future": Case(CRM, crm(ANN, "2,Bo,b@x.com,01/01/2099,\n"), 2, 0,
                            withheld=("date_out_of_range",)),
    "negative_amount": Case(ORDERS, orders(O1, "O2,2025-06-01,completed,-10,0,-10\n"), 1, 1,
                            ("negative_amount",)),
    "non_numeric_amount": Case(ORDERS, orders(O1, 'O2,2025-06-01,completed,"12,5O",0,1\n'), 1, 1,
                               ("parse_decimal",)),
    "decimal_comma": Case(ORDERS, orders('O1,2025-06-01,completed,"12,50","2,50","10,00"\n'),
                          1, 0, options={"csv": {"decimal_comma": True}}),
    "thousands_separator": Case(ORDERS, orders('O1,2025-06-01,completed,"1,234.50",0,"1,234.50"\n'),
                                1, 0, options={"csv": {"thousands": ","}}),
    "discount_exceeds_gross": Case(ORDERS, orders(O1, "O2,2025-06-01,completed,5,6,-1\n"), 1, 1,
                                   ("discount_exceeds_gross", "negative_amount")),
    "net_not_gross_minus_discount": Case(ORDERS, orders(O1, "O2,2025-06-01,completed,10,1,8\n"),
                                         1, 1, ("net_amount_mismatch",)),
    "future_order": Case(ORDERS, orders(O1, "O2,2099-01-01,completed,1,0,1\n"), 1, 1,
                         ("date_out_of_range",)),
    "unknown_status": Case(ORDERS, orders(O1, "O2,2025-06-01,shipped,1,0,1\n"), 1, 1,
                           ("unknown_status",)),
    "nps_11": Case(SURVEYS, surveys("S1,2025-06-01,9,5\n", "S2,2025-06-01,11,5\n"), 1, 1,
                   ("nps_out_of_range",)),
    "csat_0": Case(SURVEYS, surveys("S1,2025-06-01,9,5\n", "S2,2025-06-01,9,0\n"), 1, 1,
                   ("csat_out_of_range",)),
    "nps_not_a_number": Case(SURVEYS, surveys("S1,2025-06-01,9,5\n", "S2,2025-06-01,ten,5\n"),
                             1, 1, ("parse_integer",)),
    # an order or an answer keeps its revenue or score without its bad e-mail; a consent event
    # states what one address agreed to, so it is quarantined whole
    "order_email_withheld": Case(
        ORDERS | {"columns": ORDERS["columns"] | {"email": "mail"}},
        (ORD_HEAD.strip() + ",mail\n" + O1.strip() + ",a@x.com\n"
         + O1.replace("O1", "O2").strip() + ",a.x.com\n").encode(),
        2, 0, withheld=("email_syntax",),
    ),
    "survey_email_withheld": Case(
        SURVEYS | {"columns": SURVEYS["columns"] | {"email": "mail"}},
        (SRV_HEAD.strip() + ",mail\n" + "S1,2025-06-01,9,5,s.x.com\n").encode(),
        1, 0, withheld=("email_syntax",),
    ),
    "consent_email_quarantined": Case(
        {"name": "optins", "kind": "consents", "path": "in.csv", "format": "csv",
         "columns": {"consent_id": "id", "email": "mail", "channel": "channel",
                     "is_opt_in": "yes", "consented_at": "at"}},
        b"id,mail,channel,yes,at\nK1,a@x.com,email,true,2025-06-01\n"
        b"K2,a.x.com,email,true,2025-06-01\n",
        1, 1, ("email_syntax",),
    ),
    "web_order_email_withheld": Case(
        WEB | {"columns": WEB["columns"] | {"email": "mail"}},
        b'{"id":"W1","at":"2025-06-01","status":"completed","total":1,"mail":"w@x.com"}\n'
        b'{"id":"W2","at":"2025-06-01","status":"completed","total":2,"mail":"w at x"}\n',
        2, 0, withheld=("email_syntax",),
    ),
    # --- JSON lines ---------------------------------------------------------------------------
    "jsonl_truncated": Case(
        WEB, b'{"id":"W1","at":"2025-06-01","status":"completed","total":1}\n{"id":"W2","at', 1, 1,
        ("malformed_row:invalid_json",),
    ),
    "jsonl_bom_crlf": Case(
        WEB, b'\xef\xbb\xbf{"id":"W1","at":"2025-06-01","status":"completed","total":1}\r\n', 1, 0
    ),
    "jsonl_not_utf8": Case(WEB, b'{"id":"W1","name":"Zo\xeb"}\n', 0, 1,
                           ("malformed_row:unreadable_file",)),
}  # fmt: skip


def run_case(con, tmp_path, case: Case, files: dict[str, bytes | None]):
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
    sources = [case.source | case.options]
    if case.source["kind"] != "customers":
        sources.append(CRM | {"path": "no_such_file.csv"})
    return ingest(con, make_config(tmp_path, *sources), "run-1", NOW)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_loaded_or_quarantined_never_lost(con, tmp_path, name):
    case = CASES[name]
    (result,) = [
        r
        for r in run_case(con, tmp_path, case, {case.source["path"]: case.content})
        if r.source == case.source["name"]
    ]
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    assert (result.rows_loaded, result.rows_quarantined) == (case.loaded, case.quarantined)
    rules = {r for (r,) in con.execute("select distinct rule from quarantine").fetchall()}
    assert rules == set(case.rules)
    withheld = {r for (r,) in con.execute("select distinct rule from withheld_values").fetchall()}
    assert withheld == set(case.withheld)
    no_reason = con.execute("select count(*) from quarantine where coalesce(message, '') = ''")
    assert no_reason.fetchone()[0] == 0
    if case.message:
        assert case.message in result.message


def raw_customer(con, column: str):
    return con.execute(f"select {column} from raw_customers").fetchone()[0]


def test_an_at_typed_as_a_word_is_repaired_and_nothing_is_guessed(con, tmp_path):
    """ "bo at example.com" loads as bo@example.com; an address the repair would not make valid
    is withheld as delivered (its record loads without it), and one that lost its "@" is never
    guessed at."""
    content = crm(
        ANN,
        "2,Bo,Bo at Example.com,,\n",
        "3,Cy,cy at example,,\n",
        "4,Di,di.gmail.com,,\n",
        '5,Ed,"ed@gmail,com",,\n',
        '6,Fay,"fay,smith@x.com",,\n',
        "7,Gil,Gil Roe <gil@x.com>,,\n",
        '8,Hal,"<hal@x.com>, <hal@y.com>",,\n',
    )
    run_case(con, tmp_path, CASES["email_without_at"], {"in.csv": content})
    loaded = con.execute("select source_record_id, email from raw_customers order by 1").fetchall()
    assert loaded == [
        ("1", "ann@x.com"),
        ("2", "Bo@Example.com"),
        ("3", None),
        ("4", None),
        ("5", "ed@gmail.com"),
        ("6", None),
        ("7", "gil@x.com"),  # a display form names its address
        ("8", None),  # two addresses: which one?
    ]
    assert con.execute("select count(*) from quarantine").fetchall() == [(0,)]
    withheld = con.execute(
        "select raw_value, rule from withheld_values order by row_number"
    ).fetchall()
    assert withheld == [
        ("cy at example", "email_syntax"),
        ("di.gmail.com", "email_syntax"),
        ("fay,smith@x.com", "email_syntax"),  # a comma before the "@" is not read as a dot
        ("<hal@x.com>, <hal@y.com>", "email_syntax"),
    ]


def test_a_withheld_value_loads_its_record_and_is_kept_with_its_reason(con, tmp_path):
    """The record loads with the bad field NULL and every other field; withheld_values keeps the
    value, the rule, the row and the record's key; a re-delivered file replaces them."""
    case = CASES["unparseable_date"]
    content = crm(ANN, "2,Bo,bo.example.com,31/02/1990,07911 654321\n")
    (result,) = [r for r in run_case(con, tmp_path, case, {"in.csv": content}) if r.source == "crm"]
    assert (result.rows_loaded, result.rows_quarantined) == (2, 0)
    bo = con.execute(
        "select first_name, email, birth_date, phone from raw_customers "
        "where source_record_id = '2'"
    ).fetchall()
    assert bo == [("Bo", None, None, "07911 654321")]
    withheld = con.execute(
        "select source, source_file, row_number, record_key, field, rule, raw_value, message "
        "from withheld_values order by field"
    ).fetchall()
    assert withheld == [
        ("crm", "in.csv", 2, "2", "birth_date", "parse_date", "31/02/1990",
         "birth_date: parse_date (value 31/02/1990); the record loaded without it"),
        ("crm", "in.csv", 2, "2", "email", "email_syntax", "bo.example.com",
         "email: email_syntax (value bo.example.com); the record loaded without it"),
    ]  # fmt: skip
    (tmp_path / "in.csv").write_bytes(crm(ANN, "2,Bo,bo@example.com,,\n"))
    ingest(con, make_config(tmp_path, CRM), "run-2", NOW)
    assert con.execute("select count(*) from withheld_values").fetchall() == [(0,)]
    assert raw_customer(con, "max(email)") == "bo@example.com"


def test_extra_and_duplicated_columns_are_kept_as_json(con, tmp_path):
    run_case(
        con, tmp_path, CASES["duplicated_header"], {"in.csv": CASES["duplicated_header"].content}
    )
    assert json.loads(raw_customer(con, "extra")) == {"first_1": "X"}


def test_cells_keep_their_text_less_nul_bytes_and_huge_cells_load_whole(con, tmp_path):
    run_case(con, tmp_path, CASES["null_bytes"], {"in.csv": CASES["null_bytes"].content})
    assert raw_customer(con, "first_name") == "Ann"
    con.execute("delete from raw_customers; delete from ingest_log")
    run_case(con, tmp_path, CASES["huge_cell_1mb"], {"in.csv": CASES["huge_cell_1mb"].content})
    assert len(raw_customer(con, "first_name")) == 1 << 20


def test_excel_mangled_phone_is_kept_raw_and_blanked_by_identity(con, tmp_path):
    case = CASES["excel_mangled_phone"]
    run_case(con, tmp_path, case, {"in.csv": case.content})
    phone = raw_customer(con, "phone")
    assert phone == "4.47E+11"
    assert normalize_phone(pd.Series([phone]), "GB").isna().all()


def test_encodings_and_decimal_marks_give_the_same_values(con, tmp_path):
    run_case(con, tmp_path, CASES["utf16_declared"], {"in.csv": CASES["utf16_declared"].content})
    assert raw_customer(con, "first_name") == "Ann"
    for name, expected in (("decimal_comma", (12.5, 2.5, 10)), ("thousands_separator", (1234.5,))):
        con.execute("delete from raw_orders; delete from ingest_log")
        run_case(con, tmp_path, CASES[name], {"in.csv": CASES[name].content})
        amounts = con.execute("select gross_amount, discount_amount, net_amount from raw_orders")
        assert tuple(float(a) for a in amounts.fetchone())[: len(expected)] == expected


def test_a_directory_matched_by_a_glob_is_skipped(con, tmp_path):
    case = Case(CRM | {"path": "drops/*.csv"}, None, 1, 0)
    results = run_case(con, tmp_path, case, {"drops/a.csv": crm(ANN), "drops/b.csv": None})
    assert [(r.source_file.rsplit("/", 1)[-1], r.rows_loaded) for r in results] == [("a.csv", 1)]


@pytest.mark.parametrize("name", list(CASES))
def test_contract_run_in_duckdb_agrees_with_pandera(con, tmp_path, monkeypatch, name):
    """Large files run the pandera contract translated to SQL; both must find the same faults."""
    import duckdb

    import ccv.ingest.contracts as contracts

    case = CASES[name]
    query = (
        "select 'q', row_number, line_number, field, rule from quarantine union all "
        "select 'w', row_number, null, field, rule from withheld_values order by all"
    )
    run_case(con, tmp_path, case, {case.source["path"]: case.content})
    by_pandera = con.execute(query).fetchall()
    monkeypatch.setattr(contracts, "PANDAS_MAX_ROWS", -1)
    in_duckdb = duckdb.connect()
    in_duckdb.execute("set TimeZone = 'UTC'")
    run_case(in_duckdb, tmp_path, case, {})
    assert in_duckdb.execute(query).fetchall() == by_pandera


QUARANTINE_COLUMNS = (
    "row_number, line_number, field, rule, raw_value, message, raw_record::varchar, record_key"
)


def loaded_tables(con) -> dict[str, list[tuple]]:
    """Raw, quarantine and withheld rows, less the columns that name the run."""
    out = {"quarantine": con.execute(f"select {QUARANTINE_COLUMNS} from quarantine order by all")}
    out["withheld_values"] = con.execute(
        "select * exclude (run_id, withheld_at) from withheld_values order by all"
    )
    for table in ("raw_customers", "raw_orders", "raw_survey_responses"):
        out[table] = con.execute(f"select * exclude (run_id, loaded_at) from {table} order by all")
    return {table: result.fetchall() for table, result in out.items()}


# Files whose dialect cannot be sniffed, or that lack mapped columns (rejected whole), or are
# empty: only `read_file` copes with them, at any size.
COPYING_READER_ONLY = {
    "wrong_delimiter", "unterminated_quote", "binary_garbage", "empty_file", "missing_columns"
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_streaming_path_for_large_files_loads_the_same_rows(con, tmp_path, monkeypatch, name):
    """Large CSV / Parquet files are checked and loaded by scanning the file twice instead of
    copying it; every bad-input case must give the same raw and quarantine rows as the copying
    path with the same (SQL-executed) contract."""
    import duckdb

    import ccv.ingest.contracts as contracts
    import ccv.ingest.load as load
    import ccv.ingest.streaming as streaming

    case = CASES[name]
    monkeypatch.setattr(contracts, "PANDAS_MAX_ROWS", -1)
    run_case(con, tmp_path, case, {case.source["path"]: case.content})
    copied = loaded_tables(con)
    monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", 0)
    checked = []
    check_streamed = streaming.check_streamed

    def spy(*args):
        rows = check_streamed(*args)
        checked.append(args[2].format)  # the file was scanned: no fallback to copying
        return rows

    monkeypatch.setattr(load, "check_streamed", spy)
    streamed = duckdb.connect()
    streamed.execute("set TimeZone = 'UTC'")
    run_case(streamed, tmp_path, case, {})
    assert loaded_tables(streamed) == copied
    # only files that the copying reader alone can parse (or must reject) take that path
    copying_only = case.source["format"] == "jsonl" or name in COPYING_READER_ONLY
    assert checked == ([] if copying_only else [case.source["format"]])

    # the same file cut into pieces scanned in parallel (csv_pieces.py): same rows, numbers and
    # rejected lines as one scan of the whole file
    import ccv.ingest.csv_pieces as csv_pieces

    monkeypatch.setattr(csv_pieces, "SPLIT_MIN_BYTES", 1)
    cut = []
    in_pieces_of = load.streamed_in_pieces

    def spy_pieces(con, source, streamed, pieces, escape):
        cut.append(len(pieces))
        return in_pieces_of(con, source, streamed, pieces, escape)

    monkeypatch.setattr(load, "streamed_in_pieces", spy_pieces)
    in_pieces = duckdb.connect()
    in_pieces.execute("set TimeZone = 'UTC'")
    in_pieces.execute("set threads = 3")
    run_case(in_pieces, tmp_path, case, {})
    assert loaded_tables(in_pieces) == copied
    if name in CUT_INTO_PIECES:
        assert cut == [2]


# Cases whose (tiny) files the parity test above must see cut into pieces: the dialects where a
# cut in the wrong place would show (quotes around a newline, CRLF, BOM, Latin-1, tabs, NUL).
CUT_INTO_PIECES = {
    "quoted_newline", "crlf_line_ends", "utf8_bom", "latin1_declared", "tsv", "null_bytes",
    "duplicate_id_in_file", "unknown_status",
}  # fmt: skip


def test_csv_cut_points_fall_outside_quotes(tmp_path):
    """A cut lands just after a newline with an even number of quotes before it, never inside
    a quoted field; a file with an odd number of quotes is not cut at all."""
    from ccv.ingest.csv_pieces import cut_points

    rows = ["id,comment\n"] + [f'{i},"line one\nline ""two""\nthree"\n' for i in range(50)]
    path = tmp_path / "q.csv"
    path.write_text("".join(rows))
    data = path.read_bytes()
    points = cut_points(path, '"', 4)
    assert len(points) == 3
    for offset, line in points:
        assert data[:offset].count(b'"') % 2 == 0 and data[offset - 1 : offset] == b"\n"
        assert re.match(rb'\d+,"line one\n', data[offset:])  # a record starts there
        assert line == data[:offset].count(b"\n") + 1
    path.write_text("".join(rows) + '50,"unterminated\n')
    assert cut_points(path, '"', 4) == []


def test_a_large_file_is_never_copied_into_a_table(con, tmp_path, monkeypatch):
    """The streaming path does not call the copying reader, and quarantines a repeated id (found
    only after the first scan) with its whole record."""
    import ccv.ingest.load as load
    import ccv.ingest.streaming as streaming

    def no_copy(*_args):
        raise AssertionError("read_file copied a large file")

    monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(load, "read_file", no_copy)
    case = CASES["duplicate_id_in_file"]
    (result,) = run_case(con, tmp_path, case, {"in.csv": case.content})
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 1, 1)
    ((row, rule, record),) = con.execute(
        "select row_number, rule, raw_record from quarantine"
    ).fetchall()
    assert (row, rule) == (2, "duplicate_id")
    assert json.loads(record) == {
        "id": "1", "first": "Ann", "mail": "ann@x.com", "dob": "05/03/1990", "tel": "07911 123456"
    }  # fmt: skip


def test_streamed_parquet_keeps_file_row_numbers(con, tmp_path, monkeypatch):
    import ccv.ingest.streaming as streaming

    monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", 0)
    path = tmp_path / "in.parquet"
    con.execute(
        f"copy (select * from (values ('O1', '2025-06-01', 'completed', 10.0, 1.0, 9.0), "
        f"('O2', '2025-06-01', 'shipped', 1.0, 0.0, 1.0), "
        f"('O3', '2025-06-01', 'completed', 1.0, 0.0, 1.0)) "
        f"t(id, \"at\", status, gross, discount, net)) to '{path}' (format parquet)"
    )
    source = ORDERS | {"path": "in.parquet", "format": "parquet"}
    results = ingest(con, make_config(tmp_path, source, CRM | {"path": "none.csv"}), "r", NOW)
    assert [(r.rows_loaded, r.rows_quarantined) for r in results if r.source == "shop"] == [(2, 1)]
    assert con.execute("select row_number, rule from quarantine").fetchall() == [
        (2, "unknown_status")
    ]
    assert con.execute("select row_number from raw_orders order by 1").fetchall() == [(1,), (3,)]


def test_jsonl_read_in_chunks_keeps_line_numbers_and_odd_keys(con, tmp_path, monkeypatch):
    """A large JSON-lines file is read chunk by chunk: records cut by a chunk boundary, blank
    lines and broken lines keep their physical line numbers; keys with dots, spaces, quotes or
    a leading `$` are columns like any other (kept in `extra` when unmapped)."""
    from ccv.ingest import readers

    monkeypatch.setattr(readers, "JSONL_CHUNK_BYTES", 7)  # every line crosses a boundary
    odd = {"a.b": 1, "$d": "x", 'q"t': "y", "sp ace": None}
    lines = [
        json.dumps({"id": "W1", "at": "2025-06-01", "status": "completed", "total": 1} | odd),
        "",
        '{"id":"W2","at',
        json.dumps({"id": "W3", "at": "2025-06-02", "status": "completed", "total": 2.5}),
    ]
    content = ("\n".join(lines) + "\n").encode()
    (result,) = [
        r
        for r in run_case(con, tmp_path, Case(WEB, content, 2, 1), {"in.jsonl": content})
        if r.source == "web"
    ]
    assert (result.rows_loaded, result.rows_quarantined) == (2, 1)
    assert con.execute("select line_number, rule from quarantine").fetchall() == [
        (3, "malformed_row:invalid_json")
    ]
    rows = con.execute("select order_id, net_amount, extra from raw_orders order by 1").fetchall()
    assert [(r[0], float(r[1])) for r in rows] == [("W1", 1.0), ("W3", 2.5)]
    assert json.loads(rows[0][2]) == {"a.b": "1", "$d": "x", 'q"t': "y", "sp ace": None}


def test_a_failed_streaming_scan_falls_back_loudly_and_loses_nothing(
    con, tmp_path, monkeypatch, caplog
):
    """If DuckDB cannot stream a large file, the copying path loads it and the log says why."""
    import duckdb

    import ccv.ingest.load as load
    import ccv.ingest.streaming as streaming

    def broken_scan(*_args):
        raise duckdb.InvalidInputException("scan failed\nsecond line")

    monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(load, "check_streamed", broken_scan)
    case = CASES["duplicate_id_in_file"]
    with caplog.at_level("WARNING", logger="ccv.ingest.load"):
        (result,) = run_case(con, tmp_path, case, {"in.csv": case.content})
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (2, 1, 1)
    assert "in.csv could not be streamed (scan failed)" in caplog.text
