"""Order lines nested in an order record (the web shop's `items` array in JSON lines).

The nested array is unnested into one text row per line, then mapped and validated exactly like a
file of kind `order_lines` (same canonical fields, same contract). Accounting stays per order: an
order and its lines load together, and a line that breaks the contract quarantines its order with
the line's field and rule (e.g. `items[2].quantity: non_positive_quantity`), because loading an
order without one of its lines would make line totals disagree with the order silently.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pandas as pd

from ccv.config import SourceConfig
from ccv.ingest.contracts import row_violations
from ccv.ingest.mapping import mapped_select
from ccv.ingest.readers import _json_path, _sql_str, is_json, quote_ident


@dataclass(frozen=True)
class NestedLines:
    """The lines of one read orders file, mapped into temp table `_mapped_lines`."""

    source: SourceConfig
    fields: list[str]
    lines_key: str


def _lines_source(source: SourceConfig) -> SourceConfig:
    """A synthetic `order_lines` source describing the nested items of `source`."""
    columns = {"order_id": "_order_id", "line_number": "_line_number", **source.line_columns}
    return SourceConfig.model_validate(
        {
            "name": source.name,
            "kind": "order_lines",
            "path": source.path,
            "format": source.format,
            "columns": columns,
            "order_source": source.name,
            "booleans": source.booleans.model_dump(),
        }
    )


# A nested line's `_row` (its identity while it is checked) is its order's row times this, plus
# its position in the order's array: unique and in file order, like a running count.
LINE_ROW_STRIDE = 1 << 24


def line_rows(order_row: str, position: str) -> str:
    """SQL: the `_row` of the line at 1-based `position` of the order at `order_row`. A running
    `row_number()` over the unnested lines would make the whole statement run on one thread; an
    order with more lines than the stride fails loudly instead of sharing numbers."""
    return (
        f"case when {position} < {LINE_ROW_STRIDE} "
        f"then {order_row} * {LINE_ROW_STRIDE} + {position} "
        f"else error('an order has more than {LINE_ROW_STRIDE - 1} nested lines') end"
    )


def read_nested_lines(
    con: duckdb.DuckDBPyConnection, source: SourceConfig, table: str, columns: list[str]
) -> NestedLines:
    """Unnest `source.lines_from` of read table `table`, mapped, into `_mapped_lines`
    (`_orders_items` holds every order's lines value and whether it is a JSON array)."""
    key = source.lines_from or ""
    lines_source = _lines_source(source)
    item_keys = sorted(set(source.line_columns.values()))
    items = quote_ident(key) if key in columns else "null::varchar"
    order_id = quote_ident(source.columns["order_id"])
    con.execute(
        f"""
        create or replace temp table _orders_items as
        select _row as _order_row, trim({order_id}) as _order_id, {items} as _items,
               {is_json(items, "ARRAY")} as _ok
        from {table}
        """
    )
    # One JSON parse per item for all its keys. The items are mapped straight from the unnest
    # (no table of their text), and numbered without a window (see `line_rows`), so that this
    # runs on every thread.
    paths = ", ".join(_sql_str(_json_path(k)) for k in item_keys)
    values = f"json_extract_string(_item, [{paths}])" if item_keys else "null"
    extract = "".join(f", _values[{i}] as {quote_ident(k)}" for i, k in enumerate(item_keys, 1))
    items_sql = f"""(
        select {line_rows("_order_row", "_line_number")} as _row, _order_row, _order_id,
               cast(_line_number as varchar) as _line_number, _item{extract}
        from (
            select *, {values} as _values
            from (
                select _order_row, _order_id, unnest(_array) as _item,
                       generate_subscripts(_array, 1) as _line_number
                from (select _order_row, _order_id, _items::json[] as _array
                      from _orders_items where _ok)
            )
        )
    )"""
    mapped = mapped_select(lines_source, items_sql, ["_order_id", "_line_number", *item_keys])
    # the whole item is the line's `extra`; mapped columns and position come from one scan
    con.execute(
        f"""
        create or replace temp table _mapped_lines as
        select * exclude (extra, _item), _item as extra
        from (select {mapped.columns_sql}, _order_row, _item from {items_sql})
        """
    )
    return NestedLines(lines_source, mapped.fields, key)


def line_violations(
    con: duckdb.DuckDBPyConnection, lines: NestedLines, now: dt.datetime, tolerance_days: int
) -> pd.DataFrame:
    """Violations of the nested lines, reported on their order's row (`_row` = order row)."""
    bad = row_violations(con, "order_lines", lines.fields, "_mapped_lines", now, tolerance_days)
    # the order and position of the failing lines only (not of every line: millions at 1M)
    con.register("_bad_line_rows", bad[["_row"]])
    try:
        positions = con.execute(
            "select _row, _order_row, _raw_line_number as _line_number from _mapped_lines "
            "semi join _bad_line_rows using (_row)"
        ).df()
    finally:
        con.unregister("_bad_line_rows")
    bad = bad.merge(positions, on="_row")
    out = pd.DataFrame(
        {
            "_row": bad["_order_row"].astype("int64"),
            "field": lines.lines_key + "[" + bad["_line_number"].astype(str) + "]." + bad["field"],
            "rule": bad["rule"],
            "raw_value": bad["raw_value"],
        }
    )
    not_arrays = con.execute(
        "select _order_row as _row, _items as raw_value from _orders_items "
        "where _items is not null and not _ok"
    ).df()
    if not not_arrays.empty:
        not_arrays["field"] = lines.lines_key
        not_arrays["rule"] = "malformed_lines"
        out = pd.concat([out, not_arrays[list(out.columns)]], ignore_index=True)
    return out.astype({"_row": "int64", "field": str, "rule": str, "raw_value": "object"})


def load_lines(con: duckdb.DuckDBPyConnection, lines: NestedLines, run_id, name, now) -> None:
    """Insert the lines of orders that were loaded (not in `_bad`) into raw_order_lines."""
    con.execute(
        f"""
        insert into raw_order_lines by name
        select ? as run_id, ? as source, ? as source_file, _order_row as row_number,
               {", ".join(lines.fields)}, ? as order_source, extra, ? as loaded_at
        from _mapped_lines where _order_row not in (select _row from _bad)
        """,
        [run_id, lines.source.name, name, lines.source.name, now],
    )
    for table in ("_mapped_lines", "_orders_items"):
        con.execute(f"drop table if exists {table}")
