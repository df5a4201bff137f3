"""The nightly pipeline as plain functions: ingest → resolve → build → publish.

The Prefect flow (`flows/nightly.py`) calls these one task each; the CLI, tests and benchmarks
can call them directly (`run_nightly`). A run holds the warehouse lock, builds a complete new
version in its own folder (see `warehouse/versions.py`), and only `publish` touches what analysts
read, with one atomic rename — so a crash at any point leaves the published warehouse as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ccv.analytics.customer_value import build_customer_value
from ccv.analytics.segment_history import ensure_segment_history, snapshot_segments
from ccv.config import Config
from ccv.identity.partitions import LOCAL, Mapper
from ccv.identity.resolve import ResolveResult, resolve
from ccv.ingest.load import FileResult, ingest
from ccv.ingest.streaming import unordered
from ccv.privacy.pseudonym import pseudonym_key
from ccv.progress import advance
from ccv.reporting import write_report_and_summary
from ccv.warehouse import models, versions
from ccv.warehouse.lock import WarehouseLock
from ccv.warehouse.schema import ensure_schema

log = logging.getLogger(__name__)

# Marts published as Parquet snapshots, with a `<table>_history` view over all kept snapshots.
MART_TABLES = (
    "customer_360",
    "customer_360_pseudo",
    "rfm_scores",
    "loyalty_segments",
    "customer_value",
    "segment_moves",
    "nps_summary",
)

# The stages of a night in order, for progress reports (`ccv.progress`).
STAGES = ("ingest", "resolve", "build", "publish", "report")


def _entering(name: str) -> None:
    """Report progress: the night has reached stage `name`."""
    advance("nightly", STAGES.index(name), len(STAGES), name)


@dataclass(frozen=True)
class Run:
    """One pipeline run: its id and the version folder it builds."""

    run_id: str
    started_at: dt.datetime
    layout: versions.Layout
    full_refresh: bool

    @property
    def build_path(self) -> Path:
        """The DuckDB file this run builds (published only by `publish_stage`)."""
        return self.layout.db(self.run_id)


@dataclass(frozen=True)
class SourceCounts:
    """Rows of a source's current file versions in the warehouse, and this run's file statuses."""

    source: str
    files: int
    statuses: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    values_withheld: int  # from loaded rows (withheld_values)


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
    report_path: Path | None = None


def connect(
    path: Path, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the session settings every stage relies on (UTC timestamps) and
    the run's memory limit (`[warehouse] memory_limit`; a stage passes it, a quick read-only
    look need not)."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    return con


def open_build(run: Run, config: Config) -> duckdb.DuckDBPyConnection:
    """A stage's connection to the DuckDB file its run builds, under the run's memory limit."""
    return connect(run.build_path, memory_limit=config.warehouse.memory_limit)


def new_run_id(now: dt.datetime) -> str:
    """A sortable, unique run id: `20261123T020000-1a2b3c`."""
    return now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


@contextmanager
def run_context(config: Config, full_refresh: bool = False) -> Iterator[Run]:
    """Hold the warehouse lock for a run; discard its version folder unless it published."""
    now = dt.datetime.now()
    layout = versions.Layout.from_config(config)
    run_id = new_run_id(now)
    with WarehouseLock(layout.lock_path, run_id):
        versions.prune(layout)  # removes folders that crashed runs left behind
        run = Run(run_id, now, layout, full_refresh)
        start_run(run)
        try:
            yield run
        finally:
            versions.discard(layout, run_id)  # no-op once published


def start_run(run: Run) -> None:
    """Create the run's version folder from the published warehouse (empty on a full refresh)."""
    started = dt.datetime.now()
    versions.prepare_version(run.layout, run.run_id, run.full_refresh)
    with connect(run.build_path) as con:
        ensure_schema(con)
        con.execute(
            "insert into runs values (?, null, ?, null, 'running', ?)",
            [run.run_id, run.started_at, run.full_refresh],
        )
        _record_stage(con, run.run_id, "start", started)


@contextmanager
def stage(run: Run, config: Config, name: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection of stage `name` to the DuckDB file its run builds (under the run's memory
    limit); when the stage's work succeeded, its start and end go into `run_stages`.

    Why: the run report shows the last nights' stage times, so an operator sees which stage a
    slow night spent its time in (and since which night)."""
    _entering(name)
    started = dt.datetime.now()
    with open_build(run, config) as con:
        yield con
        _record_stage(con, run.run_id, name, started)


def _record_stage(
    con: duckdb.DuckDBPyConnection, run_id: str, name: str, started: dt.datetime
) -> None:
    con.execute(
        "insert into run_stages values (?, ?, ?, ?)", [run_id, name, started, dt.datetime.now()]
    )


def ingest_stage(run: Run, config: Config) -> list[FileResult]:
    """Load every configured source into raw tables and build the staging layer."""
    with stage(run, config, "ingest") as con:
        results = ingest(con, config, run.run_id, run.started_at)
        models.build(con, layers=("staging",), run_id=run.run_id)
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


def resolve_stage(run: Run, config: Config, mapper: Mapper = LOCAL) -> ResolveResult:
    """Resolve identities into customer_xref with stable customer ids.

    `mapper` runs the partitioned comparison work (in this process by default; the flow passes
    one that maps Prefect tasks over a Dask cluster when `[scale] task_runner = "dask"`).
    """
    with stage(run, config, "resolve") as con:
        result = resolve(con, config, run.run_id, run.started_at, mapper)
    return result


def build_stage(run: Run, config: Config, as_of: dt.date | None = None) -> dt.date:
    """Build core tables and marts as of `as_of` (default: the config's rule); run the checks."""
    with stage(run, config, "build") as con:
        as_of = as_of or resolve_as_of(con, config, run.started_at.date())
        variables = {
            "as_of_date": (as_of, "date"),
            "rfm_window_months": (config.analytics.rfm_window_months, "integer"),
            "lapsed_after_days": (config.analytics.lapsed_after_days, "integer"),
            "pseudonym_key": (
                pseudonym_key(config.resolve(config.activation.pseudonym_key_path)),
                "varchar",
            ),
        }
        for name, (value, sql_type) in variables.items():
            con.execute(f"set variable {name} = ?::{sql_type}", [value])
        models.build(con, layers=("core",), run_id=run.run_id)
        value = build_customer_value(
            con,
            as_of,
            horizon_months=config.analytics.clv_horizon_months,
            monthly_discount_rate=config.analytics.clv_monthly_discount_rate,
        )
        for error in (value.bgnbd_error, value.gamma_gamma_error):
            if error:
                log.warning("CLV predictions left NULL: %s", error)
        ensure_segment_history(con)
        models.build(con, layers=("marts",))
        snapshot_segments(con, as_of)
        con.execute("update runs set as_of_date = ? where run_id = ?", [as_of, run.run_id])
    return as_of


def publish_stage(run: Run, config: Config) -> None:
    """Write this run's Parquet snapshots, then publish the version with one atomic rename."""
    layout = run.layout
    with stage(run, config, "publish") as con:
        as_of = con.execute(
            "select as_of_date from runs where run_id = ?", [run.run_id]
        ).fetchone()[0]
        versions.carry_snapshots(layout, run.run_id, MART_TABLES, replace_on=as_of)
        for done, table in enumerate(MART_TABLES):
            advance("publish marts", done, len(MART_TABLES), table)
            folder = layout.marts(run.run_id) / table
            partition = folder / f"snapshot_on={as_of.isoformat()}"
            partition.mkdir(parents=True, exist_ok=True)
            # rows in any order (a mart's table order is no contract) and zstd's fastest
            # level: customer_360 at a million customers 1.6 -> 1.0 s, 81 -> 82 MB
            with unordered(con):
                con.execute(
                    f"copy (select * from {table}) to '{partition / (table + '.parquet')}' "
                    "(format parquet, compression zstd, compression_level 1)"
                )
            con.execute(versions.history_view_sql(table, folder))
        advance("publish marts", len(MART_TABLES), len(MART_TABLES))
        con.execute(
            "update runs set status = 'published', finished_at = ? where run_id = ?",
            [dt.datetime.now(), run.run_id],
        )
        con.execute("checkpoint")
    versions.publish(layout, run.run_id)


def report_stage(run: Run) -> tuple[Path, str]:
    """Write the run's HTML report into its published version; return it and a markdown summary.

    Runs after publishing, so a report problem can never hold back the data.
    """
    _entering("report")
    with versions.removing(run.layout):  # the versions no longer kept, meanwhile
        out, markdown = write_report_and_summary(
            run.build_path, run.layout.version(run.run_id) / "report.html", run.run_id
        )
    advance("nightly", len(STAGES), len(STAGES), "done")
    return out, markdown


def summarize(
    run: Run,
    files: list[FileResult],
    resolved: ResolveResult,
    as_of: dt.date,
    report: Path | None = None,
) -> RunSummary:
    """Collect the counts the CLI prints, from the published warehouse."""
    summary = RunSummary(
        run.run_id,
        as_of,
        files,
        resolved,
        warehouse_path=run.layout.db_link,
        marts_dir=run.layout.marts_link,
        report_path=report,
    )
    with connect(run.layout.db_link, read_only=True) as con:
        tables = ("customers", "orders", "survey_responses", "quarantine", "withheld_values")
        for table in (*tables, *MART_TABLES):
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
        with this_run as (
            select source, string_agg(distinct status, ', ' order by status) as statuses,
                   count(*) as files
            from ingest_log where run_id = ? group by source
        ),

        withheld as (
            select source, count(*) as n from withheld_values group by source
        )
        select t.source, t.files, t.statuses, coalesce(sum(l.rows_read), 0),
               coalesce(sum(l.rows_loaded), 0), coalesce(sum(l.rows_quarantined), 0),
               coalesce(any_value(w.n), 0)
        from this_run t
        left join stg_ingest_files l on l.source = t.source
        left join withheld w on w.source = t.source
        group by all order by t.source
        """,
        [run_id],
    ).fetchall()
    return [SourceCounts(*row) for row in rows]


def run_nightly(
    config: Config, as_of: dt.date | None = None, full_refresh: bool = False
) -> RunSummary:
    """Run all stages without Prefect (same functions as the flow's tasks)."""
    with run_context(config, full_refresh) as run:
        files = ingest_stage(run, config)
        resolved = resolve_stage(run, config)
        as_of = build_stage(run, config, as_of)
        publish_stage(run, config)
        report, _ = report_stage(run)
    return summarize(run, files, resolved, as_of, report)
