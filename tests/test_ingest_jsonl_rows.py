"""JSON lines numbered without a window: the record numbers of good lines, the cleaning of carriage
returns and byte-order marks, and the numbering of nested order lines (`lines.line_rows`)."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest

from ccv.ingest import lines as nested
from ccv.ingest import readers
from ccv.ingest.load import ingest
from tests.conftest import NOW, WEB, make_config

NO_CRM = {
    "name": "crm",
    "kind": "customers",
    "path": "none.csv",
    "format": "csv",
    "columns": {"source_record_id": "id"},
}


def record(order_id: str, **extra) -> str:
    return json.dumps(
        {"id": order_id, "at": "2025-06-01", "status": "completed", "total": 1} | extra
    )


# physical lines: good records among blank, whitespace-only, broken and non-object lines
LINES = [
    "\ufeff" + record("W1") + "\r",  # BOM and CRLF: cleaned, a good record
    "",  # blank: skipped, not a record
    "   ",  # spaces only: skipped
    "\u3000",  # an ideographic space: trim removes it, skipped
    "\t",  # a tab: trim keeps it, so the line is read and is not a JSON object
    record("W2", note="a!b").replace("!", "\r"),  # a raw carriage return in a value goes too
    "[1, 2]",  # JSON, not an object
    '{"id": "W3", "at',  # broken
    "  " + record("W4"),  # leading spaces: still an object
    record("W5"),
]


def run(con, tmp_path, content: bytes):
    (tmp_path / "in.jsonl").write_bytes(content)
    results = ingest(con, make_config(tmp_path, NO_CRM, WEB), "run-1", NOW)
    (web,) = [r for r in results if r.source == "web"]
    raw = con.execute(
        "select row_number, order_id, extra from raw_orders order by row_number"
    ).fetchall()
    quarantined = con.execute(
        "select line_number, row_number, rule from quarantine order by line_number"
    ).fetchall()
    return (web.rows_read, web.rows_loaded, web.rows_quarantined), raw, quarantined


@pytest.mark.parametrize("chunk_bytes", [7, 64 << 20])
def test_good_lines_are_numbered_in_file_order_across_chunks(
    con, tmp_path, monkeypatch, chunk_bytes
):
    monkeypatch.setattr(readers, "JSONL_CHUNK_BYTES", chunk_bytes)
    counts, raw, quarantined = run(con, tmp_path, ("\n".join(LINES) + "\n").encode())
    assert counts == (7, 4, 3)
    assert [(r[0], r[1]) for r in raw] == [(1, "W1"), (2, "W2"), (3, "W4"), (4, "W5")]
    assert json.loads(raw[1][2]) == {"note": "ab"}
    assert quarantined == [
        (5, None, "malformed_row:invalid_json"),
        (7, None, "malformed_row:invalid_json"),
        (8, None, "malformed_row:invalid_json"),
    ]


def test_cr_and_bom_are_removed_only_from_chunks_that_hold_them():
    def holds(data: str):
        return lambda needle: needle in data.encode()

    clean = pa.array(["{}", "{\u00ef}"], pa.large_string())  # ï is not a BOM
    assert readers._without_cr_and_bom(clean, holds("{}\n{\u00ef}\n")) is clean
    dirty = pa.array(["\ufeff{}\r", "{\r}"], pa.large_string())
    cleaned = readers._without_cr_and_bom(dirty, holds("\ufeff{}\r\n{\r}\n"))
    assert cleaned.to_pylist() == ["{}", "{}"]


@pytest.mark.parametrize("chunk_bytes", [1, 5, 12, 13, 64])
def test_chunks_give_the_lines_of_the_file_whatever_their_size(tmp_path, monkeypatch, chunk_bytes):
    """Lines cut by a chunk boundary (or longer than a chunk) come back whole, in order,
    numbered by their physical line, the last one even without a final newline."""
    monkeypatch.setattr(readers, "JSONL_CHUNK_BYTES", chunk_bytes)
    physical = ["{}", "", '{"a": "a long line, longer than a chunk"}', "x", "", "\u00e9t\u00e9"]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(physical), encoding="utf-8")  # no newline at the end
    got = [
        (n, line)
        for table in readers._jsonl_batches(path)
        for n, line in zip(table["line_number"].to_pylist(), table["line"].to_pylist(), strict=True)
    ]
    assert got == list(enumerate(physical, start=1))


def test_nested_line_rows_are_unique_and_in_file_order():
    con = duckdb.connect()
    rows = con.execute(
        f"select {nested.line_rows('o', 'p')} as r from (values (1, 1), (1, 2), (2, 1), (10, 3)) "
        "t(o, p) order by o, p"
    ).fetchall()
    assert [r for (r,) in rows] == sorted({r for (r,) in rows})
    assert len(rows) == 4


def test_an_order_with_more_lines_than_the_stride_fails_loudly(con, tmp_path, monkeypatch):
    monkeypatch.setattr(nested, "LINE_ROW_STRIDE", 3)
    items = [{"sku": f"S{i}", "qty": 1} for i in range(3)]
    web = WEB | {"lines_from": "items", "line_columns": {"sku": "sku", "quantity": "qty"}}
    (tmp_path / "in.jsonl").write_text(record("W1", items=items) + "\n")
    with pytest.raises(duckdb.Error, match="more than 2 nested lines"):
        ingest(con, make_config(tmp_path, NO_CRM, web), "run-1", NOW)
