"""Moving identity tables between DuckDB and pandas through Arrow.

Why: with pandas 3, strings are Arrow-backed (`str` dtype). DuckDB's `.df()` hands over Python
string objects, which pandas then converts back into Arrow one by one (`_from_sequence`), and
registering a pandas frame makes DuckDB scan those objects again: for the ~370k identity
records of a 100k-customer night that was ~10 s of a resolve. Going through an Arrow table
instead is a columnar copy each way.

`read_frame` gives the dtypes `.df()` gives (nullable integers and booleans where a column has
NULLs, dates as `datetime64[us]`, an all-NULL text column as Python ``None``s), so the code
downstream behaves exactly as before; `write_table` creates a table from a frame.
"""

from __future__ import annotations

import contextlib
import ctypes
import warnings

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

# what `.df()` turns a column with NULLs of these types into
_NULLABLE = {
    pa.bool_(): pd.BooleanDtype(),
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}


def _column(column: pa.ChunkedArray) -> pd.Series | np.ndarray:
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if column.null_count == len(column):
            return np.full(len(column), None, dtype=object)
        return column.to_pandas()
    if pa.types.is_date(kind):
        return column.to_pandas(date_as_object=False).astype("datetime64[us]")
    if column.null_count and kind in _NULLABLE:
        return column.to_pandas(types_mapper={kind: _NULLABLE[kind]}.get)
    return column.to_pandas()


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """A pandas frame of `table` with the dtypes DuckDB's `.df()` gives.

    `copy=False`: the columns are new pandas objects already; letting the constructor stack
    same-typed ones into 2-D blocks copied them all once more (at 1M customers the incremental
    night's peak was that copy beside the Arrow table and the columns).
    """
    columns = zip(table.column_names, table.columns, strict=True)
    return pd.DataFrame({name: _column(column) for name, column in columns}, copy=False)


def read_frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
) -> pd.DataFrame:
    """`con.execute(sql, params).df()`, via Arrow (see the module docstring)."""
    return arrow_to_frame(read_arrow(con, sql, params or []))


def read_arrow_by_range(
    con: duckdb.DuckDBPyConnection, sql: str, total: int, step: int
) -> pa.Table:
    """`read_arrow` of a query with two parameters, the bounds ``[start, stop)`` of a numbering
    ``0 .. total``: run one range of `step` at a time and concatenated in range order (the
    query's schema even when no range has a row).

    Why: DuckDB materialises a whole result before handing it over as Arrow, so reading millions
    of wide, sorted rows at once holds the sort, the result and the Arrow copy together (about
    5 GB for the identity records of a million customers); a range at a time doubles only one
    range.

    Each range is copied into buffers of Arrow's own: Arrow frees a batch that DuckDB hands
    over only when all of its columns are gone, so a frame made from it (whose Arrow-backed
    text keeps its columns, while numbers are copied into numpy) would keep the numeric
    columns alive twice as long as the frame lives (~0.6 GB for a million customers' night).
    """
    tables = []
    for start in range(0, max(total, 1), step):
        part = read_arrow(con, sql, [start, start + step])
        # concatenating a column's chunks copies their buffers: at a million customers ~1 s
        # for the delta night's 3.7M records, where a take of every row took 4.5 s
        columns = [pa.concat_arrays(c.chunks) if c.num_chunks else c for c in part.columns]
        tables.append(pa.table(columns, schema=part.schema))
        del part, columns  # DuckDB's batch goes before the next range is read
    return pa.concat_tables(tables)


def read_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pa.Table:
    """The result of `sql` as an Arrow table (fetched whole)."""
    result = con.execute(sql, params or [])
    # `con.sql` would save one copy, but refuses to run while an earlier `execute` result on the
    # connection is unfinished (a `fetchone`), which callers here leave routinely
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        return result.to_arrow_table()


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table (an all-None object column is of Arrow's null type, which
    DuckDB reads as its NULL type, as it reads such a pandas column)."""
    return pa.Table.from_pandas(frame, preserve_index=False)


def write_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """`create or replace table <table>` holding `frame`."""
    arrow = frame_to_arrow(frame)
    con.register("_arrow_frame", arrow)
    try:
        con.execute(f"create or replace table {table} as select * from _arrow_frame")
    finally:
        con.unregister("_arrow_frame")


def release_freed_memory() -> None:
    """Hand memory that freed frames leave behind back to the operating system.

    Why: Arrow's allocator (mimalloc) and glibc's malloc keep freed pages for reuse, so after
    the frames of millions of identity records are dropped the process still holds gigabytes
    that DuckDB, allocating on its own, cannot use; the golden-record SQL then adds its own
    peak on top of them.
    """
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): no trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
