"""Ingest stage: every configured file is read, mapped, validated, and loaded or quarantined.

Accounting is exact and checked here: for every file, rows read = rows loaded + rows quarantined,
where a row the reader could not split counts as read and quarantined. Files are identified by
content hash, so re-running a night loads nothing twice, and a changed file replaces the rows its
earlier version loaded. A file that cannot be used at all (missing mapped columns, unreadable) is
logged with the reason; the run goes on unless the source is `mandatory`.

Two paths give the same rows: small files are copied into a text table, mapped into a typed
table and validated by pandera (`_read_and_load`); CSV and Parquet files of `STREAM_MIN_BYTES` or
more are never copied, but scanned once to validate and once to load (`streaming.py`).
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ccv.config import KEY_FIELD, Config, SourceConfig
from ccv.ingest.contracts import contract, row_violations
from ccv.ingest.csv_pieces import csv_pieces, pieces_wanted
from ccv.ingest.export_changes import record_export_changes
from ccv.ingest.file_names import (
    file_key,
    moved_from,
    recorded_name,
    relocate_to_project,
    rename_files,
)
from ccv.ingest.file_versions import FileVersion, current_version
from ccv.ingest.lines import line_violations, load_lines, read_nested_lines
from ccv.ingest.mapping import mapped_select, record_json
from ccv.ingest.readers import (
    UnreadableFile,
    _sql_str,
    csv_rejects,
    quote_ident,
    read_file,
    rfc_escape,
    stream_file,
    streamed_in_pieces,
    unreadable_lines,
)
from ccv.ingest.snapshots import prune_superseded_quarantine, prune_superseded_snapshot_rows
from ccv.ingest.streaming import check_streamed, quarantine_checked, streams, unordered
from ccv.ingest.withheld import field_sql, record_withheld, split_withheld
from ccv.privacy.suppression import quarantine_erased, suppression_hashes
from ccv.progress import advance
from ccv.warehouse.schema import RAW_TABLES, ensure_schema

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """A mandatory source could not be ingested."""


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file in this run."""

    source: str
    source_file: str
    status: str  # loaded | replaced | unchanged | moved | rejected | failed | missing
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str | None = None


def source_files(config: Config, source: SourceConfig) -> list[Path]:
    """The files of a source: its path, or every file its glob matches, in natural order
    (`file_names.file_key`: crm_9.csv before crm_10.csv), the order staging ranks them in."""
    pattern = str(config.resolve(source.path))
    if glob.has_magic(pattern):
        found = sorted(glob.glob(pattern), key=lambda p: (file_key(p), p))
        return [Path(p) for p in found if Path(p).is_file()]
    path = Path(pattern)
    return [path] if path.is_file() else []


def ingest(
    con: duckdb.DuckDBPyConnection, config: Config, run_id: str, now: dt.datetime
) -> list[FileResult]:
    """Ingest every configured source; raise IngestError if a mandatory source failed."""
    ensure_schema(con)
    relocated = relocate_to_project(con, config.base_dir)
    if relocated:
        log.info("%d input files renamed to their paths inside the project folder", relocated)
    record_sources(con, config)
    suppressed = suppression_hashes(config)  # people erased on request (hashes only)
    results: list[FileResult] = []
    found = {source.name: source_files(config, source) for source in config.sources}
    total, done = sum(len(files) for files in found.values()), 0
    for source in config.sources:
        files = found[source.name]
        if not files:
            results.append(
                _log(
                    con,
                    run_id,
                    source,
                    recorded_name(config.resolve(source.path), config.base_dir),
                    None,
                    now,
                    FileResult(
                        source.name,
                        source.path,
                        "missing",
                        message=f"no file matches {source.path}",
                    ),
                )
            )
            continue
        for path in files:
            advance("input files", done, total, f"{source.name}: {Path(path).name}")
            results.append(
                ingest_file(con, config, source, path, run_id, now, suppressed=suppressed)
            )
            done += 1
    advance("input files", done, total)
    record_export_changes(con, run_id)  # before pruning: it warns of export stamps in `extra`
    # quarantine first: a later delivery of a record is evidence that raw pruning may remove
    if pruned := prune_superseded_quarantine(con):
        log.info("%d quarantined rows of old snapshot exports superseded and pruned", pruned)
    if pruned := prune_superseded_snapshot_rows(con):
        log.info("%d superseded rows of old snapshot exports pruned", pruned)
    failed = [
        r
        for r in results
        if r.status in ("missing", "rejected", "failed") and config.source(r.source).mandatory
    ]
    if failed:
        raise IngestError(
            "mandatory source(s) could not be ingested:\n"
            + "\n".join(f"  {r.source}: {r.source_file}: {r.message}" for r in failed)
        )
    return results


def record_sources(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Write the per-source settings that staging SQL needs into `ingest_sources`."""
    con.execute("delete from ingest_sources")
    con.executemany(
        "insert into ingest_sources values (?, ?, ?, ?, ?, ?)",
        [
            [s.name, s.kind, s.load, s.phone_region, s.customer_source, s.consents_from_opt_in]
            for s in config.sources
        ],
    )


def _raw_tables(source: SourceConfig) -> list[str]:
    """The raw tables a file of `source` writes to (orders with nested lines write two)."""
    tables = [RAW_TABLES[source.kind]]
    if source.lines_from:
        tables.append(RAW_TABLES["order_lines"])
    return tables


def _source_columns(source: SourceConfig) -> dict[str, str]:
    """Per-source values stored on every raw row (see schema.RAW_EXTRA_COLUMNS)."""
    if source.kind == "customers":
        return {"phone_region": _sql_str(source.phone_region) if source.phone_region else "null"}
    if source.kind == "order_lines":
        return {"order_source": _sql_str(source.order_source or "")}
    return {}


def _previous_load(con, source: str, source_file: str) -> tuple[str, str, FileResult] | None:
    """The file's version in use: its content hash, the run that loaded it and what that run
    logged; None for a file never loaded."""
    row = con.execute(
        "select content_hash, run_id, status, rows_read, rows_loaded, rows_quarantined, message "
        "from ingest_log where source = ? and source_file = ? "
        "and status in ('loaded', 'replaced', 'moved') order by finished_at desc limit 1",
        [source, source_file],
    ).fetchone()
    if row is None:
        return None
    content_hash, run_id, *result = row
    return content_hash, run_id, FileResult(source, source_file, *result)


@dataclass(frozen=True)
class _FileLoad:
    """What loading one file of a source needs besides the data: who, when, and the rules."""

    source: SourceConfig
    run_id: str
    name: str  # the file, as recorded in ingest_log and quarantine
    now: dt.datetime
    tolerance: int  # days a date may lie in the future
    erased_hashes: set[str]
    phone_region: str

    def quarantine_erased(self, con: duckdb.DuckDBPyConnection, table: str) -> int:
        """Quarantine the rows of `table` that belong to people erased on request (rule
        `erased`, no raw value or record); return how many."""
        return quarantine_erased(
            con,
            table,
            self.source,
            self.erased_hashes,
            run_id=self.run_id,
            source_file=self.name,
            now=self.now,
            phone_region=self.phone_region,
        )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    source: SourceConfig,
    path: Path,
    run_id: str,
    now: dt.datetime,
    suppressed: set[str] | None = None,
) -> FileResult:
    """Ingest one file of `source` (skipping it if this exact content was loaded before; a
    file an earlier attempt of this run loaded, before a retried ingest, is reported as that
    attempt logged it)."""
    started = dt.datetime.now()
    name = recorded_name(path, config.base_dir)
    version = current_version(con, source.name, name, path)
    previous, logged_by, logged = _previous_load(con, source.name, name) or (None, None, None)
    if previous == version.content_hash:
        if logged_by == run_id:  # an earlier attempt of this run (a retried ingest) loaded it
            return logged
        result = FileResult(source.name, name, "unchanged", message="same content already loaded")
        return _log(con, run_id, source, name, version, started, result)
    old_name = (
        moved_from(con, source.name, version.content_hash, config.base_dir)
        if previous is None
        else None
    )
    if old_name is not None:
        rename_files(con, [(source.name, old_name, name)])
        message = f"moved from {old_name}: same content, its rows kept and not loaded again"
        result = FileResult(source.name, name, "moved", message=message)
        return _log(con, run_id, source, name, version, started, result)
    # Whatever an earlier version of this file (or a rejected attempt) left is replaced.
    for table in _raw_tables(source):
        con.execute(
            f"delete from {table} where source = ? and source_file = ?", [source.name, name]
        )
    for table in ("quarantine", "withheld_values"):
        con.execute(
            f"delete from {table} where source = ? and source_file = ?", [source.name, name]
        )
    status = "loaded" if previous is None else "replaced"
    job = _FileLoad(
        source,
        run_id,
        name,
        now,
        tolerance=config.run.future_tolerance_days,
        erased_hashes=suppression_hashes(config) if suppressed is None else suppressed,
        phone_region=source.phone_region or config.identity.default_phone_region,
    )
    counts = None
    if streams(source, path):
        counts = _stream_and_load(con, job, path)
    if counts is None:
        try:
            read = read_file(con, path, source)
        except UnreadableFile as exc:
            return _reject_unreadable(
                con, run_id, source, name, version, started, now, path, str(exc)
            )
        mapped = mapped_select(source, read.table, read.columns)
        if mapped.missing_columns and (read.row_count or read.columns):
            message = (
                f"missing column(s) {', '.join(repr(c) for c in mapped.missing_columns)} "
                f"expected by sources.{source.name}.columns; found {read.columns}"
            )
            return _reject_file(con, run_id, source, name, version, started, now, read, message)
        counts = _read_and_load(con, job, read, mapped)
    rows_read, loaded, quarantined = counts
    if loaded + quarantined != rows_read:
        raise AssertionError(
            f"row accounting broken for {name}: read {rows_read}, "
            f"loaded {loaded}, quarantined {quarantined}"
        )
    message = "empty file" if rows_read == 0 else None
    result = FileResult(source.name, name, status, rows_read, loaded, quarantined, message)
    return _log(con, run_id, source, name, version, started, result)


def _read_and_load(con, job: _FileLoad, read, mapped) -> tuple[int, int, int]:
    """The copying path: the file was read into a text table; return (read, loaded, quarantined)."""
    source, run_id, name, now = job.source, job.run_id, job.name, job.now
    rows_read = read.row_count + len(read.rejects)
    loaded = quarantined = 0
    if read.row_count:
        quarantined = _validate_and_load(con, job, read, mapped)
        loaded = read.row_count - quarantined
    if read.rejects:
        _quarantine_rejects(con, run_id, source, name, now, read.rejects)
        quarantined += len(read.rejects)
    con.execute(f"drop table if exists {read.table}")
    return rows_read, loaded, quarantined


def _stream_and_load(con, job: _FileLoad, path) -> tuple[int, int, int] | None:
    """The streaming path (see streaming.py); None when the file needs the copying path
    (its dialect cannot be sniffed, a mapped column is missing, or DuckDB cannot scan it)."""
    source = job.source
    streamed = stream_file(con, path, source)
    if streamed is None or mapped_select(source, "_", streamed.columns).missing_columns:
        return None
    (threads,) = con.execute("select current_setting('threads')").fetchone()
    parts = pieces_wanted(path, int(threads)) if source.format == "csv" else 1
    escape = rfc_escape(con, path, source) if parts > 1 else None
    if escape is None:
        return _check_and_load(con, job, streamed)
    with csv_pieces(path, source.csv.quote, source.csv.encoding, parts) as pieces:
        if pieces:  # a large file, one piece per thread (see csv_pieces.py)
            streamed = streamed_in_pieces(con, source, streamed, pieces, escape)
        return _check_and_load(con, job, streamed)


def _check_and_load(con, job: _FileLoad, streamed) -> tuple[int, int, int] | None:
    """Scan 1 (check), quarantine, scan 2 (load) of a streamed file; None as `_stream_and_load`."""
    source, run_id, name, now = job.source, job.run_id, job.name, job.now
    mapped = mapped_select(source, f"({streamed.sql})", streamed.columns)
    schema = contract(source.kind, now, job.tolerance)
    with unordered(con):
        try:
            rows = check_streamed(con, source, streamed, mapped, schema, bool(job.erased_hashes))
        except duckdb.Error as exc:
            # the copying path reads the file again and reports what it cannot parse row by row
            log.warning(
                "%s: %s could not be streamed (%s); loading it through the copying path",
                source.name,
                name,
                str(exc).splitlines()[0],
            )
            con.execute("drop table if exists _checked")
            return None
        rejects = csv_rejects(con, streamed.rejects)
        erased = job.quarantine_erased(con, "_checked")
        quarantined, withheld = quarantine_checked(
            con, source, streamed, schema, mapped.fields, run_id, name, now
        )
        quarantined += erased
        loaded = _insert_raw(
            con, source, mapped.fields, run_id, name, now, f"({mapped.sql})", "_skip", withheld
        )
    con.execute("drop table _skip")
    con.execute("drop table _withheld")
    if rejects:
        _quarantine_rejects(con, run_id, source, name, now, rejects)
    return rows + len(rejects), loaded, quarantined + len(rejects)


def _validate_and_load(con, job: _FileLoad, read, mapped) -> int:
    """Map the read rows, quarantine the invalid ones, load the rest; return rows quarantined."""
    source, run_id, name, now = job.source, job.run_id, job.name, job.now
    con.execute(f"create or replace temp table _mapped as {mapped.sql}")
    erased = job.quarantine_erased(con, "_mapped")
    bad = _violations(con, source, mapped.fields, now, job.tolerance)
    if source.lines_from:
        # An order and its nested lines load together: a bad line quarantines its order.
        lines = read_nested_lines(con, source, read.table, read.columns)
        if erased:  # an erased person's order takes its lines with it
            con.execute(
                "delete from _mapped_lines where _order_row not in (select _row from _mapped)"
            )
        bad = pd.concat([bad, line_violations(con, lines, now, job.tolerance)], ignore_index=True)
    con.register("_bad_found", bad)
    con.execute("create or replace temp table _bad as select * from _bad_found")
    con.unregister("_bad_found")
    withheld = split_withheld(con, source.kind)
    record_withheld(con, run_id, source, name, now, "_mapped")
    _quarantine_violations(con, run_id, source, name, now, read)
    con.execute(f"drop table {read.table}")  # free the text copy before the big insert
    _insert_raw(con, source, mapped.fields, run_id, name, now, "_mapped", "_bad", withheld)
    if source.lines_from:
        load_lines(con, lines, run_id, name, now)
    ((quarantined,),) = con.execute("select count(distinct _row) from _bad").fetchall()
    for table in ("_bad", "_withheld", "_mapped"):
        con.execute(f"drop table {table}")
    return quarantined + erased


def _quarantine_violations(con, run_id, source: SourceConfig, name, now, read) -> None:
    """One quarantine row per (record, field, rule) in `_bad`, with the record's key and text."""
    con.execute(
        f"""
        insert into quarantine
        select ?, ?, ?, b._row, null, b.field, b.rule, b.raw_value,
               b.field || ': ' || b.rule || coalesce(' (value ' || b.raw_value || ')', ''),
               {record_json(read.columns, "r")}, ?,
               m.{quote_ident(KEY_FIELD[source.kind])}
        from _bad b join _mapped m using (_row) join {read.table} r using (_row)
        """,
        [run_id, source.name, name, now],
    )


def _insert_raw(
    con, source: SourceConfig, fields, run_id, name, now, rows: str, skip: str, withheld=()
) -> int:
    """Append the mapped rows `rows` (SQL: a table or subquery with `_row` and the mapped fields)
    whose `_row` is not in table `skip` to the source's raw table; return how many. The
    `withheld` fields load as NULL in the rows of `_withheld` (see withheld.py).

    `not in` rather than `anti join`: DuckDB estimates a CSV scan read with given columns at a
    few dozen rows, so it built the anti join's hash table on the whole file (`RIGHT_ANTI`; under
    a memory limit it spilled) and then emitted the rows from it mostly on one thread. `not in`
    (a mark join) always builds on the small `skip`, so the pieces of a large file
    (csv_pieces.py) are mapped and inserted on every thread.
    """
    per_source = "".join(f"{sql} as {col}, " for col, sql in _source_columns(source).items())
    (inserted,) = con.execute(
        f"""
        insert into {RAW_TABLES[source.kind]} by name
        select ? as run_id, ? as source, ? as source_file, _row as row_number,
               {", ".join(field_sql(f, withheld) for f in fields)}, {per_source}extra,
               ? as loaded_at
        from {rows}
        where _row not in (select _row from {skip} where _row is not null)
        """,
        [run_id, source.name, name, now],
    ).fetchone()
    return inserted


def _reject_unreadable(con, run_id, source, name, version, started, now, path, reason):
    """A file no reader can parse: every line is quarantined, the file is `rejected`."""
    message = f"file could not be read as {source.format}: {reason}"
    rejects = unreadable_lines(path, message)
    _quarantine_rejects(con, run_id, source, name, now, rejects)
    rows = len(rejects)
    result = FileResult(source.name, name, "rejected", rows, 0, rows, message)
    return _log(con, run_id, source, name, version, started, result)


def _reject_file(con, run_id, source, name, version, started, now, read, message) -> FileResult:
    """Quarantine every row of a file that cannot be mapped, so none is lost."""
    columns = ", ".join(f"{_sql_str(c)}, {quote_ident(c)}" for c in read.columns)
    con.execute(
        f"""
        insert into quarantine
        select ?, ?, ?, _row, null, null, 'file_rejected', null, ?, json_object({columns}), ?,
               null
        from {read.table}
        """,
        [run_id, source.name, name, message, now],
    )
    rows = read.row_count
    if read.rejects:
        _quarantine_rejects(con, run_id, source, name, now, read.rejects)
        rows += len(read.rejects)
    con.execute(f"drop table if exists {read.table}")
    result = FileResult(source.name, name, "rejected", rows, 0, rows, message)
    return _log(con, run_id, source, name, version, started, result)


def _quarantine_rejects(con, run_id, source, name, now, rejects) -> None:
    con.executemany(
        "insert into quarantine values (?, ?, ?, null, ?, null, ?, null, ?, to_json(?), ?, null)",
        [
            [run_id, source.name, name, r.line_number, r.rule, r.message, r.raw, now]
            for r in rejects
        ],
    )


def _violations(con, source: SourceConfig, fields, now, tolerance_days) -> pd.DataFrame:
    return row_violations(con, source.kind, fields, "_mapped", now, tolerance_days)


def _log(
    con, run_id, source: SourceConfig, name, version: FileVersion | None, started, result
) -> FileResult:
    con.execute(
        "insert into ingest_log (run_id, source, kind, source_file, content_hash, status, "
        "rows_read, rows_loaded, rows_quarantined, message, started_at, finished_at, file_size, "
        "file_mtime_ns) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            source.name,
            source.kind,
            name,
            version and version.content_hash,
            result.status,
            result.rows_read,
            result.rows_loaded,
            result.rows_quarantined,
            result.message,
            started,
            dt.datetime.now(),
            version and version.size,
            version and version.mtime_ns,
        ],
    )
    return result
