"""The nightly pipeline as plain functions: ingest → resolve → build → publish.

The Prefect flow (`flows/nightly.py`) calls these one task each; tests and benchmarks call them
directly. A run works on a private copy of the warehouse (the *build* file) and only `publish`
touches what analysts read, by atomic renames, so a crash mid-run leaves the published warehouse
as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ccv.config import Config
from ccv.identity.resolve import ResolveResult, resolve
from ccv.ingest.load import FileResult, ingest
from ccv.warehouse import models
from ccv.warehouse.schema import ensure_schema

MART_TABLES = ("customer_360", "rfm_scores", "loyalty_segments")


@dataclass(frozen=True)
class Run:
    """One pipeline run: its id, its private build file and where it publishes."""

    run_id: str
    started_at: dt.datetime
    build_path: Path
    warehouse_path: Path
    marts_dir: Path
    full_refresh: bool


@dataclass(frozen=True)
class SourceCounts:
    """Rows of a source's current file versions in the warehouse, and this run's file statuses."""

    source: str
    files: int
    statuses: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int


@dataclass
class RunSummary:
    """What a run did, for the closing summary and the tests."""

    run_id: str
    as_of: dt.date | None = None
    files: list[FileResult] = field(default_factory=list)
    resolve: ResolveResult | None = None
    sources: list[SourceCounts] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)
    warehouse_path: Path | None = None
    marts_dir: Path | None = None


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the session settings every stage relies on (UTC timestamps)."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    return con


def new_run_id(now: dt.datetime) -> str:
    """A sortable, unique run id: `20261123T020000-1a2b3c`."""
    return now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def start_run(config: Config, full_refresh: bool = False, now: dt.datetime | None = None) -> Run:
    """Prepare the build file: a copy of the published warehouse, or empty on a full refresh."""
    now = now or dt.datetime.now()
    run_id = new_run_id(now)
    warehouse_path = config.resolve(config.warehouse.path)
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    build_path = warehouse_path.with_name(f".{warehouse_path.name}.{run_id}.build")
    if warehouse_path.exists() and not full_refresh:
        shutil.copyfile(warehouse_path, build_path)
    run = Run(
        run_id,
        now,
        build_path,
        warehouse_path,
        config.resolve(config.warehouse.marts_dir),
        full_refresh,
    )
    with connect(build_path) as con:
        ensure_schema(con)
        con.execute(
            "insert into runs values (?, null, ?, null, 'running', ?)",
            [run_id, now, full_refresh],
        )
    return run


def ingest_stage(run: Run, config: Config) -> list[FileResult]:
    """Load every configured source into raw tables and build the staging layer."""
    with connect(run.build_path) as con:
        results = ingest(con, config, run.run_id, run.started_at)
        models.build(con, layers=("staging",))
    return results


def resolve_as_of(con: duckdb.DuckDBPyConnection, config: Config, today: dt.date) -> dt.date:
    """The run's as-of date from the config rule (`latest_order`, `today` or a date)."""
    rule = config.run.as_of
    if rule == "today":
        return today
    if rule == "latest_order":
        latest = con.execute("select max(ordered_on) from stg_orders").fetchone()[0]
        return latest or today
    return dt.date.fromisoformat(rule)


def resolve_stage(run: Run, config: Config) -> ResolveResult:
    """Resolve identities into customer_xref."""
    with connect(run.build_path) as con:
        return resolve(con, config, run.run_id, run.started_at)


def build_stage(run: Run, config: Config, as_of: dt.date | None = None) -> dt.date:
    """Build core tables and marts as of `as_of` (default: the config's rule); run the checks."""
    with connect(run.build_path) as con:
        as_of = as_of or resolve_as_of(con, config, run.started_at.date())
        con.execute("set variable as_of_date = ?::date", [as_of])
        con.execute(
            "set variable rfm_window_months = ?::integer", [config.analytics.rfm_window_months]
        )
        con.execute(
            "set variable lapsed_after_days = ?::integer", [config.analytics.lapsed_after_days]
        )
        models.build(con, layers=("core", "marts"))
        con.execute("update runs set as_of_date = ? where run_id = ?", [as_of, run.run_id])
    return as_of


def publish_stage(run: Run, config: Config) -> RunSummary:
    """Write the marts as Parquet and swap the build file in as the published warehouse."""
    summary = RunSummary(run.run_id, warehouse_path=run.warehouse_path, marts_dir=run.marts_dir)
    staging_dir = run.marts_dir.with_name(f".{run.marts_dir.name}.{run.run_id}.build")
    if staging_dir.exists():
        shutil.rmtree(staging_dir)
    with connect(run.build_path) as con:
        for table in MART_TABLES:
            out = staging_dir / table
            out.mkdir(parents=True)
            con.execute(
                f"copy (select * from {table}) to '{out / (table + '.parquet')}' "
                "(format parquet, compression zstd)"
            )
        con.execute(
            "update runs set status = 'published', finished_at = ? where run_id = ?",
            [dt.datetime.now(), run.run_id],
        )
        con.execute("checkpoint")
    _swap_dir(staging_dir, run.marts_dir)
    os.replace(run.build_path, run.warehouse_path)
    return summary


def _swap_dir(new: Path, target: Path) -> None:
    """Put folder `new` in place of `target`; the old one is removed only after the swap."""
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)


def discard_run(run: Run) -> None:
    """Remove a failed run's build artefacts; the published warehouse is untouched."""
    for path in (run.build_path, run.build_path.with_name(run.build_path.name + ".wal")):
        path.unlink(missing_ok=True)
    staging_dir = run.marts_dir.with_name(f".{run.marts_dir.name}.{run.run_id}.build")
    shutil.rmtree(staging_dir, ignore_errors=True)


def summarize(
    run: Run, files: list[FileResult], resolved: ResolveResult, as_of: dt.date
) -> RunSummary:
    """Collect the counts the CLI prints, from the published warehouse."""
    summary = RunSummary(
        run.run_id,
        as_of,
        files,
        resolved,
        warehouse_path=run.warehouse_path,
        marts_dir=run.marts_dir,
    )
    with connect(run.warehouse_path, read_only=True) as con:
        for table in ("customers", "orders", "survey_responses", "quarantine", *MART_TABLES):
            summary.table_rows[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
        summary.sources = _source_counts(con, run.run_id)
        summary.segments = dict(
            con.execute(
                "select coalesce(rfm_segment, '(no orders in window)'), count(*) "
                "from customer_360 group by all order by 2 desc, 1"
            ).fetchall()
        )
    return summary


def _source_counts(con: duckdb.DuckDBPyConnection, run_id: str) -> list[SourceCounts]:
    """Per source: this run's file statuses and the counts of each file's version in use."""
    rows = con.execute(
        """
        with latest as (
            select *, row_number() over (
                partition by source, source_file order by finished_at desc
            ) as rn
            from ingest_log
            where status in ('loaded', 'replaced', 'rejected')
        ),
        this_run as (
            select source, string_agg(distinct status, ', ' order by status) as statuses,
                   count(*) as files
            from ingest_log where run_id = ? group by source
        )
        select t.source, t.files, t.statuses, coalesce(sum(l.rows_read), 0),
               coalesce(sum(l.rows_loaded), 0), coalesce(sum(l.rows_quarantined), 0)
        from this_run t left join latest l on l.source = t.source and l.rn = 1
        group by all order by t.source
        """,
        [run_id],
    ).fetchall()
    return [SourceCounts(*row) for row in rows]


def run_nightly(
    config: Config, as_of: dt.date | None = None, full_refresh: bool = False
) -> RunSummary:
    """Run all stages without Prefect; on any failure discard the build and re-raise."""
    run = start_run(config, full_refresh)
    try:
        files = ingest_stage(run, config)
        resolved = resolve_stage(run, config)
        as_of = build_stage(run, config, as_of)
        publish_stage(run, config)
    except BaseException:
        discard_run(run)
        raise
    return summarize(run, files, resolved, as_of)
