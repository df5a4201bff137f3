"""Large CSV and Parquet files: validated in one scan of the file, loaded in a second.

The path for small files (`load._validate_and_load`) copies the file into a text table, maps that
into a typed table and validates it with pandera; at 10M rows the two copies alone need ~4 GB.
Here the file stays a query (`readers.StreamedFile`) that DuckDB scans twice, mapping as it goes:

1. *check* (`check_streamed`): every row is mapped and judged by the contract's per-row rules
   (the pandera schema as translated by `contract_sql.row_checks`, plus the mapping's parse
   checks) into the narrow temp table `_checked`: row number, key columns, the failures (null for
   a valid row) and, for failing rows only, the whole record as JSON. Uniqueness per file is then
   checked on the keys in `_checked` (`quarantine_checked`).
2. *load*: the caller maps every row again and inserts it straight into the raw table unless its
   row number is in `_skip` (the quarantined rows: a small table).

A duplicate id is only known after the first scan, so its record is fetched by one more scan,
and only when the file has duplicates. Both paths give the same raw and quarantine rows: a parity
test runs every bad-input case both ways.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandera.pandas as pa

from ccv.config import KEY_FIELD, SourceConfig
from ccv.ingest.contract_sql import duplicates_sql, row_checks, unique_keys
from ccv.ingest.contracts import CROSS_FIELD_SQL
from ccv.ingest.mapping import MappedSelect, RowCheck, parse_checks
from ccv.ingest.readers import StreamedFile, _sql_str, quote_ident
from ccv.ingest.withheld import record_withheld, split_withheld

# Files at least this big stream; smaller ones take the copying path, where pandera itself runs
# on files of up to contracts.PANDAS_MAX_ROWS rows. 256 MB is ~3M rows of a typical orders file.
# Why not less: streaming parses and maps every row twice, copying once. For an orders file the
# two cost the same (1M rows: 2.3 against 2.2 s; 3M: 4.8 against 4.9 s), but a CRM export's
# mapping is costlier (e-mail repair, many text columns, `extra` as JSON): the e-shop's nightly
# 117 MB export at a million customers (718k accounts) loads in 2.1 s copied against 4.0 s
# streamed, with the same rows. Copying costs memory (a 264 MB file peaked at 1.46 GB against
# 0.66 GB streamed; DuckDB spills beyond its memory limit), which matters from here on.
STREAM_MIN_BYTES = 256 << 20
# Fields the erasure check (privacy.suppression.quarantine_erased) looks at.
ERASURE_FIELDS = ("email", "phone", "loyalty_id", "customer_record_id")


def streams(source: SourceConfig, path: Path) -> bool:
    """Whether `path` takes the streaming path (nested order lines always take the other)."""
    return (
        source.format in ("csv", "parquet")
        and not source.lines_from
        and path.stat().st_size >= STREAM_MIN_BYTES
    )


@contextlib.contextmanager
def unordered(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB produce rows out of file order (rows carry their `_row`): inserts then run
    on every thread without buffering to restore the order."""
    (previous,) = con.execute("select current_setting('preserve_insertion_order')").fetchone()
    con.execute("set preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"set preserve_insertion_order = {str(previous).lower()}")


def _failure_list(checks: list[RowCheck]) -> str:
    """SQL for a row's failures: a list of {field, rule, raw_value}, or null when it has none."""
    parse_failing = {c.field: c.failing for c in checks if c.rule.startswith("parse_")}
    items = []
    for c in checks:
        failing = c.failing
        if c.field in parse_failing and not c.rule.startswith("parse_"):
            # a value that did not parse is reported once, as a parse violation
            failing = f"({failing}) and not ({parse_failing[c.field]})"
        items.append(
            f"case when {failing} then {{'field': {_sql_str(c.field)}, "
            f"'rule': {_sql_str(c.rule)}, 'raw_value': cast({c.value} as varchar)}} end"
        )
    if not items:
        return "null"
    # the list is built only for the few failing rows: the or-chain of predicates is cheap
    any_failing = " or ".join(f"({c.failing})" for c in checks)
    listed = f"list_filter([{', '.join(items)}], lambda x: x is not null)"
    return f"case when {any_failing} then {listed} end"


def _record_json(columns: list[str], value_of) -> str:
    pairs = ", ".join(f"{_sql_str(c)}, {value_of(i, c)}" for i, c in enumerate(columns))
    return f"json_object({pairs})" if columns else "null"


def check_streamed(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    streamed: StreamedFile,
    mapped: MappedSelect,
    schema: pa.DataFrameSchema,
    with_erasure_fields: bool,
) -> int:
    """Scan 1: fill `_checked` (see module doc); return the rows scanned."""
    fields = mapped.fields
    checks = parse_checks(fields) + row_checks(schema, fields, CROSS_FIELD_SQL)
    keep = [KEY_FIELD[source.kind]]
    keep += [c for key in unique_keys(schema, fields) for c in key.columns]
    if with_erasure_fields:
        keep += [f for f in ERASURE_FIELDS if f in fields]
    keep_sql = "".join(f"{quote_ident(c)}, " for c in dict.fromkeys(keep))
    sources = "".join(f", {quote_ident(c)} as _src_{i}" for i, c in enumerate(streamed.columns))
    record = _record_json(streamed.columns, lambda i, _c: f"_src_{i}")
    src_list = "".join(f", _src_{i}" for i in range(len(streamed.columns)))
    con.execute(
        f"""
        create or replace temp table _checked as
        select _row, {keep_sql}_failures,
               case when _failures is not null then {record} end as _record
        from (
            select _row, {keep_sql}{_failure_list(checks)} as _failures{src_list}
            from (select {mapped.columns_sql}{sources} from ({streamed.sql}) as _in)
        )
        """
    )
    return con.execute("select count(*) from _checked").fetchone()[0]


def quarantine_checked(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    streamed: StreamedFile,
    schema: pa.DataFrameSchema,
    fields: list[str],
    run_id: str,
    name: str,
    now: dt.datetime,
) -> tuple[int, list[str]]:
    """Quarantine the failures in `_checked` and the repeated keys; fill `_skip` with every
    quarantined row (erased ones included) and `_withheld` with the values withheld from rows
    that load (withheld.py); return the rows quarantined here (not erased) and the fields with
    a withheld value."""
    duplicates = "".join(
        f" union all {duplicates_sql('_checked', key)}" for key in unique_keys(schema, fields)
    )
    con.execute(
        f"""
        create or replace temp table _bad as
        select _row, f.field, f.rule, f.raw_value
        from (select _row, unnest(_failures) as f from _checked where _failures is not null)
        {duplicates}
        """
    )
    withheld = split_withheld(con, source.kind)
    record_withheld(con, run_id, source, name, now, "_checked")
    (late,) = con.execute(
        "select count(*) from (select distinct _row from _bad) join _checked using (_row) "
        "where _record is null"
    ).fetchone()
    if late:  # duplicates of valid rows: their records come from one more scan of the file
        record = _record_json(streamed.columns, lambda _i, c: quote_ident(c))
        con.execute(
            f"""
            update _checked set _record = late._record
            from (
                select _row, {record} as _record from ({streamed.sql}) as _in
                semi join _bad using (_row)
            ) as late
            where _checked._row = late._row and _checked._record is null
            """
        )
    key = quote_ident(KEY_FIELD[source.kind])
    con.execute(
        f"""
        insert into quarantine
        select ?, ?, ?, b._row, null, b.field, b.rule, b.raw_value,
               b.field || ': ' || b.rule || coalesce(' (value ' || b.raw_value || ')', ''),
               c._record, ?, c.{key}
        from _bad b join _checked c using (_row)
        """,
        [run_id, source.name, name, now],
    )
    con.execute(
        """
        create or replace temp table _skip as
        select _row from _bad
        union
        select row_number from quarantine
        where run_id = ? and source = ? and source_file = ? and rule = 'erased'
        """,
        [run_id, source.name, name],
    )
    (quarantined,) = con.execute("select count(distinct _row) from _bad").fetchone()
    con.execute("drop table _bad")
    con.execute("drop table _checked")
    return quarantined, withheld
