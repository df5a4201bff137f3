"""Read one input file into a temporary DuckDB table of text columns, losing no row.

Everything is read as text (`all_varchar`) so that typing is done once, by the mapping, where a
value that does not parse becomes a quarantine reason instead of a reader crash. Rows the reader
itself cannot split (wrong number of fields, invalid JSON) come back as `Reject`s with their line.
Every table gets `_row`: the 1-based position of the record among the file's records.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ccv.config import SourceConfig
from ccv.ingest.csv_pieces import Piece


@dataclass(frozen=True)
class Reject:
    """A record the reader could not parse into fields."""

    line_number: int | None
    rule: str
    message: str
    raw: str | None


@dataclass
class ReadResult:
    """A file read into temp table `table` with source columns `columns` (plus `_row`)."""

    table: str
    columns: list[str]
    row_count: int
    rejects: list[Reject] = field(default_factory=list)


def quote_ident(name: str) -> str:
    """Quote a column name from a foreign file for use in SQL."""
    return '"' + name.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_file(con: duckdb.DuckDBPyConnection, path: Path, source: SourceConfig) -> ReadResult:
    """Read `path` with the reader of `source.format` into a temp table."""
    table = f"_in_{source.name}"
    if path.stat().st_size == 0:
        con.execute(f"create or replace temp table {table} (_row bigint)")
        return ReadResult(table, [], 0)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[source.format]
    try:
        result = reader(con, path, source, table)
    except duckdb.Error as exc:
        raise UnreadableFile(str(exc).splitlines()[0]) from None
    result.row_count = con.execute(f"select count(*) from {table}").fetchone()[0]
    return result


class UnreadableFile(Exception):
    """The file cannot be parsed as its configured format at all (e.g. binary garbage)."""


def _csv_args(
    source: SourceConfig,
    header_columns: list[str] | None,
    rejects: str = "",
    header: bool | None = None,
) -> list[str]:
    """read_csv arguments: sniffed (`header_columns` None) or given columns; unsplittable records
    go to `_rejects_<source><rejects>` (see `rejects_table`)."""
    opts = source.csv
    args = [
        f"header = {str(opts.header if header is None else header).lower()}",
        f"delim = {_sql_str(opts.delimiter)}",
        f"quote = {_sql_str(opts.quote)}",
        f"encoding = {_sql_str(opts.encoding)}",
        "store_rejects = true",
        f"rejects_table = '{rejects_table(source, rejects)}'",
        f"rejects_scan = '{_rejects_scan_table(source, rejects)}'",
        "strict_mode = true",
    ]
    if header_columns is None:
        # the sniffer only has to find the dialect (all columns are text): its default sample
        # suffices, and sniffing the whole file would read every byte twice
        args += ["all_varchar = true", "auto_detect = true"]
    else:
        cols = ", ".join(f"{_sql_str(c)}: 'varchar'" for c in header_columns)
        args += ["auto_detect = false", f"columns = {{{cols}}}"]
    if opts.escape is not None:
        args.append(f"escape = {_sql_str(opts.escape)}")
    return args


def _header_columns(path: Path, source: SourceConfig) -> list[str]:
    """The file's column names, parsed by Python from its first line (for the fallback read)."""
    encoding = {"utf-8": "utf-8-sig", "latin-1": "latin-1", "utf-16": "utf-16"}[source.csv.encoding]
    with path.open(encoding=encoding, errors="replace", newline="") as fh:
        first = fh.readline()
    row = next(csv.reader(io.StringIO(first), delimiter=source.csv.delimiter), [])
    names, seen = [], set()
    for i, name in enumerate(row if source.csv.header else [""] * len(row)):
        name = name.strip() or f"column{i}"
        while name in seen:
            name += "_1"
        seen.add(name)
        names.append(name)
    return names


def _read_csv(con, path: Path, source: SourceConfig, table: str) -> ReadResult:
    """Sniff the dialect; if sniffing fails (e.g. an unterminated quote spoils every sample),
    read again with the configured dialect and the header's column names, so that only the broken
    records are rejected; only a file neither way can parse is `UnreadableFile`."""
    try:
        return _read_csv_with(con, path, source, table, None)
    except duckdb.Error as sniff_error:
        try:
            columns = _header_columns(path, source)
            if not columns:
                raise UnreadableFile(str(sniff_error).splitlines()[0]) from None
            return _read_csv_with(con, path, source, table, columns)
        except duckdb.Error as exc:
            raise UnreadableFile(str(exc).splitlines()[0]) from None


def _read_csv_with(con, path: Path, source: SourceConfig, table: str, header_columns):
    args = _csv_args(source, header_columns)
    _drop_rejects(con, source)
    con.execute(
        f"create or replace temp table {table} as "
        f"select row_number() over () as _row, * "
        f"from read_csv({_sql_str(str(path))}, {', '.join(args)})"
    )
    columns = [c for c in _columns(con, table) if c != "_row"]
    return ReadResult(table, columns, 0, csv_rejects(con, [(rejects_table(source), 0)]))


def rejects_table(source: SourceConfig, suffix: str = "") -> str:
    """Where a CSV scan of `source` (piece `suffix`) stores the records it could not split."""
    return f"_rejects_{source.name}{suffix}"


def _rejects_scan_table(source: SourceConfig, suffix: str = "") -> str:
    return f"_rejects_scan_{source.name}{suffix}"


def _drop_rejects(con: duckdb.DuckDBPyConnection, source: SourceConfig, suffix: str = "") -> None:
    for table in (rejects_table(source, suffix), _rejects_scan_table(source, suffix)):
        con.execute(f"drop table if exists {table}")


def csv_rejects(con: duckdb.DuckDBPyConnection, tables: Sequence[tuple[str, int]]) -> list[Reject]:
    """The records the last CSV scans could not split, one reject per line: `tables` holds
    (rejects table, lines before the scanned piece's first line)."""
    if not tables:
        return []
    scans = " union all ".join(
        f"select line + {offset} as line, error_type, error_message, csv_line from {table}"
        for table, offset in tables
    )
    rows = con.execute(f"select * from ({scans}) order by line").fetchall()
    # one rejected line can yield several errors; keep one reject per line
    rejects, seen = [], set()
    for line, error_type, message, raw in rows:
        if line in seen:
            continue
        seen.add(line)
        rule = "malformed_row:" + str(error_type).lower().replace(" ", "_")
        rejects.append(Reject(line, rule, message, raw))
    return rejects


@dataclass(frozen=True)
class StreamedFile:
    """A file as a query (`sql`: `_row` plus the text columns `columns`) that DuckDB can scan
    again and again without copying it; CSV scans store unsplittable records in `rejects`
    (tables with the line offset of their piece: read them with `csv_rejects` after a scan)."""

    sql: str
    columns: list[str]
    format: str
    rejects: tuple[tuple[str, int], ...] = ()


def stream_file(con: duckdb.DuckDBPyConnection, path: Path, source: SourceConfig):
    """`path` as a `StreamedFile`, or None when only `read_file` copes with it: JSON lines, or
    a CSV whose dialect cannot be sniffed (read_file then falls back to the configured one).

    CSV rows are numbered by a streaming `row_number() over ()`, which follows the file's order
    even when the rest of the query runs out of order, so every scan gives a record the same
    `_row` as `read_file` would."""
    rejects: tuple[tuple[str, int], ...] = ()
    if source.format == "csv":
        args = ", ".join(_csv_args(source, None))
        sql = f"select row_number() over () as _row, * from read_csv({_sql_str(str(path))}, {args})"
        rejects = ((rejects_table(source), 0),)
    elif source.format == "parquet":
        parquet = f"read_parquet({_sql_str(str(path))}, file_row_number = true)"
        try:
            names = _columns(con, f"select * exclude (file_row_number) from {parquet}")
        except duckdb.Error:
            return None
        casts = ", ".join(f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}" for c in names)
        sql = f"select file_row_number + 1 as _row, {casts} from {parquet}"
    else:
        return None
    try:
        columns = [c for c in _columns(con, sql) if c != "_row"]
    except duckdb.Error:
        return None
    return StreamedFile(sql, columns, source.format, rejects)


def rfc_escape(con: duckdb.DuckDBPyConnection, path: Path, source: SourceConfig) -> str | None:
    """The sniffed escape character ('' for none) when the sniffed dialect is the configured one
    with RFC 4180 quoting, so that pieces of the file (`csv_pieces`) read with it explicitly
    parse exactly as the sniffed whole-file scan does; None when the file must not be cut."""
    opts = source.csv
    args = [a for a in _csv_args(source, None) if not a.startswith(("store_rejects", "rejects_"))]
    try:
        delim, quote, escape, comment, skip, header = con.execute(
            "select Delimiter, Quote, Escape, Comment, SkipRows, HasHeader "
            f"from sniff_csv({_sql_str(str(path))}, {', '.join(args)})"
        ).fetchone()
    except duckdb.Error:
        return None
    escape = "" if escape == "(empty)" else escape
    rfc = (delim, quote, comment, skip, header) == (
        opts.delimiter,
        opts.quote,
        "(empty)",
        0,
        opts.header,
    ) and escape in (quote, "")
    return escape if rfc and opts.escape in (None, escape) else None


def streamed_in_pieces(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    streamed: StreamedFile,
    pieces: Sequence[Piece],
    escape: str,
) -> StreamedFile:
    """`streamed` (a CSV file) as a union of numbered scans, one per piece, each continuing the
    previous piece's numbering; DuckDB runs the branches on several threads."""
    piece_source = source.model_copy(
        update={"csv": source.csv.model_copy(update={"escape": escape})}
    )
    scans, rejects, offset = [], [], 0
    for i, piece in enumerate(pieces):
        _drop_rejects(con, source, f"_{i}")
        header = piece.has_header and source.csv.header
        args = ", ".join(_csv_args(piece_source, streamed.columns, f"_{i}", header))
        scan = f"read_csv({_sql_str(str(piece.path))}, {args})"
        scans.append(f"select row_number() over () + {offset} as _row, * from {scan}")
        rejects.append((rejects_table(source, f"_{i}"), piece.first_line - 1))
        if i < len(pieces) - 1:  # the next piece numbers on from this one's record count
            (records,) = con.execute(f"select count(*) from {scan}").fetchone()
            offset += records
    return StreamedFile(" union all ".join(scans), streamed.columns, "csv", tuple(rejects))


# JSON lines are read in chunks of this many bytes: a large file never sits in memory whole.
JSONL_CHUNK_BYTES = 64 << 20


def _jsonl_batches(path: Path) -> Iterator[pa.Table]:
    """The file's physical lines as `line_number, line` tables, chunk by chunk. The newlines are
    found by numpy and the lines become one Arrow array over the chunk's bytes (no Python object
    per line, and no copy of the chunk: a line cut by a chunk boundary becomes a table of its
    own); Arrow's cast checks that they are UTF-8."""
    number, rest = 1, b""
    with path.open("rb") as fh:
        while chunk := fh.read(JSONL_CHUNK_BYTES):
            end = chunk.rfind(b"\n") + 1  # an unfinished last line waits for the next chunk
            if not end:
                rest += chunk
                continue
            start = 0
            if rest:  # the line the previous chunk left unfinished ends in this one
                start = chunk.find(b"\n") + 1
                yield (table := _line_table(rest + chunk[:start], 0, None, number))
                number += table.num_rows
            if end > start:
                yield (table := _line_table(chunk, start, end, number))
                number += table.num_rows
            rest = chunk[end:]
    if rest:
        yield _line_table(rest + b"\n", 0, None, number)


def _line_table(data: bytes, start: int, end: int | None, first: int) -> pa.Table:
    """`data[start:end]` (lines, each ending in a newline) as a table of its lines without the
    newline, numbered from `first`."""
    end = len(data) if end is None else end
    ends = np.flatnonzero(np.frombuffer(data, np.uint8, end - start, start) == ord("\n"))
    offsets = np.concatenate(([0], ends + 1)).astype(np.int64)
    with_newline = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(),
        len(ends),
        [None, pa.py_buffer(offsets), pa.py_buffer(data).slice(start, end - start)],
    )
    lines = pc.binary_slice(with_newline, 0, -1)
    try:
        text = lines.cast(pa.large_string())
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(f"not valid UTF-8 text: {exc}") from None
    text = _without_cr_and_bom(text, lambda needle: data.find(needle, start, end) >= 0)
    numbers = np.arange(first, first + len(lines), dtype=np.int64)
    table = pa.table({"line_number": numbers, "line": text})
    # several record batches, so that DuckDB scans the chunk on all its threads
    return pa.Table.from_batches(table.to_batches(max_chunksize=1 << 16), table.schema)


def _without_cr_and_bom(text: pa.Array, holds: Callable[[bytes], bool]) -> pa.Array:
    """`text` without carriage returns and byte-order marks (U+FEFF); `holds(b)` says whether
    the bytes behind `text` contain `b`. Most chunks hold neither, which a byte search finds
    quickly (the BOM's first byte is rare in text), so lines are copied only when needed."""
    if holds(b"\r"):
        text = pc.replace_substring(text, "\r", "")
    if holds(b"\xef") and holds("\ufeff".encode()):
        text = pc.replace_substring(text, "\ufeff", "")
    return text


def _json_path(key: str) -> str:
    """A JSONPath naming `key` literally (a key may hold dots, spaces or a leading `$`)."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_json(text: str, kind: str) -> str:
    """SQL: whether `text` is JSON of `kind` ('OBJECT' or 'ARRAY'), false for null. One parse
    (`json_valid`), where `json_type(try_cast(...))` parses twice: valid JSON is an object (an
    array) when it starts with `{` (`[`) after JSON whitespace."""
    opener = {"OBJECT": "\\{", "ARRAY": "\\["}[kind]
    return (
        f"coalesce(json_valid({text}) and regexp_matches({text}, '^[ \\t\\n\\r]*{opener}'), false)"
    )


def _numbered_chunk(con, chunk: pa.Table, before: int) -> pa.Table:
    """`chunk` (`line_number, line`) with `keep` (not blank), `ok` (a JSON object) and `_row`:
    the record number of each good line, counting on from the `before` good lines of earlier
    chunks. Numbering here (a cumulative sum over the chunk's flags) is what lets the later
    statements run on every thread: `row_number() over ()` over the file ran on one.
    `trim` (Unicode-aware, slow on long lines) runs only on lines not starting with `{`: a
    `case` evaluates it for those rows only, where `or` in a select list evaluates both sides."""
    con.register("_jsonl_chunk", chunk)
    try:
        flags = con.execute(
            f"""
            select line_number, keep, keep and {is_json("line", "OBJECT")} as ok
            from (select line_number, line,
                         case when prefix(line, '{{') then true else trim(line) <> '' end
                             as keep
                  from _jsonl_chunk)
            """
        ).fetchnumpy()
    finally:
        con.unregister("_jsonl_chunk")
    numbers = chunk.column("line_number").to_numpy()
    # the flags come back in scan order; should they ever not, they are put back in line order
    order = np.argsort(flags["line_number"], kind="stable")
    if not np.array_equal(flags["line_number"][order], numbers):
        raise AssertionError("JSON-lines chunk flags do not match its lines")
    keep, ok = np.asarray(flags["keep"])[order], np.asarray(flags["ok"])[order]
    rows = pa.array(before + np.cumsum(ok, dtype=np.int64), mask=~ok)
    return (
        chunk.append_column("keep", pa.array(keep))
        .append_column("ok", pa.array(ok))
        .append_column("_row", rows)
    )


def _read_jsonl(con, path: Path, source: SourceConfig, table: str) -> ReadResult:
    # Lines are split here, not by read_json, so a broken line is kept (as a reject) with its
    # line number instead of being skipped or failing the whole file.
    lines = f"_lines_{source.name}"
    con.execute(
        f"create or replace temp table {lines} "
        "(line_number bigint, line varchar, ok bool, _row bigint)"
    )
    good = 0
    for batch in _jsonl_batches(path):
        numbered = _numbered_chunk(con, batch, good)
        good += pc.sum(numbered.column("ok")).as_py() or 0
        con.register("_jsonl_batch", numbered)
        try:
            con.execute(
                f"insert into {lines} select line_number, line, ok, _row from _jsonl_batch "
                "where keep"
            )
        finally:
            con.unregister("_jsonl_batch")
    rejects = [
        Reject(line, "malformed_row:invalid_json", "line is not a JSON object", raw)
        for line, raw in con.execute(
            f"select line_number, line from {lines} where not ok order by 1"
        ).fetchall()
    ]
    keys = [
        k
        for (k,) in con.execute(
            f"""
            select key from (
                select unnest(json_keys(line)) as key, line_number
                from {lines} where ok
            ) group by key order by min(line_number), key
            """
        ).fetchall()
    ]
    # One parse per line for all keys (a `->>` per key would parse the line once per key);
    # `_row` was given chunk by chunk (`_numbered_chunk`), so no window holds this to one thread.
    paths = ", ".join(_sql_str(_json_path(k)) for k in keys)
    values = f"json_extract_string(line, [{paths}])" if keys else "null"
    extract = "".join(f", _values[{i}] as {quote_ident(k)}" for i, k in enumerate(keys, 1))
    con.execute(
        f"""
        create or replace temp table {table} as
        select _row{extract}
        from (select _row, {values} as _values from {lines} where ok)
        """
    )
    con.execute(f"drop table {lines}")
    return ReadResult(table, keys, 0, rejects)


def _read_parquet(con, path: Path, source: SourceConfig, table: str) -> ReadResult:
    try:
        con.execute(
            f"create or replace temp table _pq_{source.name} as "
            f"select * from read_parquet({_sql_str(str(path))}, file_row_number = true)"
        )
    except duckdb.Error as exc:
        raise UnreadableFile(str(exc).splitlines()[0]) from None
    columns = [c for c in _columns(con, f"_pq_{source.name}") if c != "file_row_number"]
    casts = ", ".join(f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}" for c in columns)
    con.execute(
        f"create or replace temp table {table} as "
        f"select file_row_number + 1 as _row, {casts} from _pq_{source.name}"
    )
    con.execute(f"drop table _pq_{source.name}")
    return ReadResult(table, columns, 0, [])


def unreadable_lines(path: Path, reason: str) -> list[Reject]:
    """Every non-empty physical line of an unreadable file, as rejects: nothing is lost, and
    each quarantined line says why the whole file could not be read."""
    data = path.read_bytes()
    rejects = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        text = line.rstrip(b"\r").decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        rejects.append(Reject(number, "malformed_row:unreadable_file", reason, text))
    return rejects


def _columns(con, table: str) -> list[str]:
    return [row[0] for row in con.execute(f"describe {table}").fetchall()]
