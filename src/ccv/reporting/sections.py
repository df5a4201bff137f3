"""The report's sections: each one a function that queries the warehouse and returns blocks.

A section never fails because an optional table is missing or empty: it says so in a sentence
(`Not shown: …`) and the rest of the report goes on. Every query result is fetched completely
before the next query runs (DuckDB 2.0 blocks a connection while a result is unfinished).

Blocks are plain data (facts, tables, charts, notes); `report.py` renders them to HTML through a
Jinja2 template with autoescaping, and to markdown for the Prefect artifact. Charts are only drawn
when asked for (`charts=True`), so the markdown summary needs no matplotlib work.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import duckdb
import numpy as np

from ccv.reporting import charts

# Tables per warehouse layer, in build order; `raw_*` and `stg_*` tables are found by prefix.
IDENTITY_TABLES = ("identity_records", "customer_xref", "customer_ids", "identity_events")
CORE_TABLES = ("customers", "orders", "order_lines", "survey_responses")
MART_TABLES = (
    "customer_value",
    "rfm_scores",
    "loyalty_segments",
    "customer_360",
    "nps_summary",
    "segment_moves",
    "segment_history",
)
LOYALTY_CELLS = ("true_loyalty", "latent_loyalty", "spurious_loyalty", "no_loyalty")
RFM_SEGMENTS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)
NO_RFM_SEGMENT = "(no order in window)"
SAMPLE_ROWS = 5
MAX_MOVES_PER_DIMENSION = 8
TEXT_LIMIT = 120


class ReportError(ValueError):
    """The report cannot be built as asked (e.g. a run id the warehouse does not know)."""


# --- blocks -------------------------------------------------------------------------------


@dataclass
class Facts:
    """Label/value pairs shown as a definition list."""

    items: list[tuple[str, str]]
    kind: str = "facts"


@dataclass
class Table:
    """A small table; `key` lets the markdown summary pick it."""

    key: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    caption: str = ""
    kind: str = "table"


@dataclass
class Chart:
    """An inline PNG chart."""

    uri: str
    alt: str
    caption: str = ""
    kind: str = "chart"


@dataclass
class Note:
    """A sentence; `skipped` marks a part left out because its data is missing."""

    text: str
    skipped: bool = False
    kind: str = "note"


@dataclass
class Section:
    """One report section."""

    key: str
    title: str
    blocks: list[Facts | Table | Chart | Note] = field(default_factory=list)

    def add(self, block: Facts | Table | Chart | Note) -> None:
        self.blocks.append(block)

    def skip(self, reason: str) -> Section:
        self.blocks.append(Note(reason, skipped=True))
        return self

    def table(self, key: str) -> Table | None:
        return next((b for b in self.blocks if isinstance(b, Table) and b.key == key), None)

    def facts(self) -> list[tuple[str, str]]:
        return [item for b in self.blocks if isinstance(b, Facts) for item in b.items]

    def skipped(self) -> list[str]:
        return [b.text for b in self.blocks if isinstance(b, Note) and b.skipped]


# --- formatting ---------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A value as display text (escaping is the template's job, not this one's)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | decimal.Decimal):
        value = float(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def make_table(
    key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = ""
) -> Table:
    """A table of formatted cells; numeric columns are those whose values are all numbers."""
    numeric = [
        all(
            isinstance(r[i], int | float | decimal.Decimal) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        and any(r[i] is not None for r in rows)
        for i in range(len(columns))
    ]
    return Table(key, list(columns), [[fmt(v) for v in r] for r in rows], numeric, caption)


def _one_decimal(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def missing(table: str) -> str:
    return f"Not shown: the warehouse has no {table} table."


def empty(table: str, why: str = "") -> str:
    return f"Not shown: {table} is empty{(' — ' + why) if why else ''}."


# --- warehouse access ---------------------------------------------------------------------


class Warehouse:
    """A connection plus what the report needs to know about its tables."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        rows = self.rows(
            """
            select table_name from duckdb_tables()
            where database_name = current_database() and schema_name = current_schema()
            union all
            select view_name from duckdb_views()
            where not internal
              and database_name = current_database() and schema_name = current_schema()
            """
        )
        self.relations = {name for (name,) in rows}

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Every row of a query (always fetched to the end)."""
        return self.con.execute(sql, list(params) if params else None).fetchall()

    def array(self, sql: str) -> np.ndarray:
        """The first column of a query as a numpy array (millions of values: no Python tuples)."""
        result = self.con.execute(sql).fetchnumpy()
        return np.asarray(next(iter(result.values())))

    def value(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def has(self, table: str, *columns: str) -> bool:
        if table not in self.relations:
            return False
        if not columns:
            return True
        present = {
            c
            for (c,) in self.rows(
                """
            select column_name from duckdb_columns()
            where database_name = current_database() and schema_name = current_schema()
              and table_name = ?
            """,
                [table],
            )
        }
        return all(c in present for c in columns)

    def count(self, table: str) -> int:
        return self.value(f'select count(*) from "{table}"')

    def absent_or_empty(self, table: str, *columns: str, why: str = "") -> str | None:
        """None when `table` (with `columns`) has rows, else the sentence saying why not."""
        if table not in self.relations:
            return missing(table)
        if columns and not self.has(table, *columns):
            return f"Not shown: {table} has no column {', '.join(columns)}."
        if self.count(table) == 0:
            return empty(table, why)
        return None


@dataclass(frozen=True)
class RunInfo:
    """The run the report is about (None fields when the warehouse has no `runs` row)."""

    run_id: str | None
    as_of_date: dt.date | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    status: str | None = None
    full_refresh: bool | None = None


def resolve_run(wh: Warehouse, run_id: str | None) -> RunInfo:
    """The requested run, or the latest published one (else the latest recorded)."""
    if not wh.has("runs"):
        return RunInfo(run_id)
    columns = "run_id, as_of_date, started_at, finished_at, status, full_refresh"
    if run_id is not None:
        rows = wh.rows(f"select {columns} from runs where run_id = ?", [run_id])
        if not rows:
            known = [r for (r,) in wh.rows("select run_id from runs order by started_at desc")]
            raise ReportError(
                f"run {run_id!r} is not in this warehouse's runs table; "
                f"known runs: {', '.join(known[:5]) or 'none'}"
            )
    else:
        rows = wh.rows(
            f"select {columns} from runs "
            "order by (status = 'published') desc, started_at desc limit 1"
        )
    return RunInfo(*rows[0]) if rows else RunInfo(run_id)


# --- sections -----------------------------------------------------------------------------

SectionFn = Callable[[Warehouse, RunInfo, bool], Section]


def run_header(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """1. The run: ids, dates, status, and the files it read."""
    section = Section("run", "Run")
    if run.run_id is None:
        return section.skip(
            missing("runs") if not wh.has("runs") else empty("runs", "no run was recorded")
        )
    duration = None
    if run.started_at and run.finished_at:
        duration = str(run.finished_at - run.started_at).split(".")[0]
    section.add(
        Facts(
            [
                ("Run id", fmt(run.run_id)),
                ("As-of date", fmt(run.as_of_date)),
                ("Started", fmt(run.started_at)),
                ("Finished", fmt(run.finished_at)),
                ("Duration", fmt(duration)),
                ("Status", fmt(run.status)),
                ("Full refresh", fmt(run.full_refresh)),
            ]
        )
    )
    if wh.has("run_stages"):
        section.add(_stage_times(wh, run))
    if not wh.has("ingest_log"):
        return section.skip(missing("ingest_log"))
    rows = wh.rows(
        """
        select source, kind, source_file, status, rows_read, rows_loaded, rows_quarantined,
               message
        from ingest_log where run_id = ? order by source, source_file
        """,
        [run.run_id],
    )
    if not rows:
        return section.skip("Not shown: ingest_log has no file for this run.")
    rows = [(r[0], r[1], PurePath(r[2]).name, *r[3:]) for r in rows]
    section.add(
        make_table(
            "files",
            ["source", "kind", "file", "status", "read", "loaded", "quarantined", "message"],
            rows,
            "Files this run looked at (ingest_log). `unchanged` files were loaded by an "
            "earlier run and were not read again.",
        )
    )
    return section


TIMED_STAGES = ("start", "ingest", "resolve", "build", "publish")


def _stage_times(wh: Warehouse, run: RunInfo) -> Table:
    """Seconds per stage of this run and of the published runs before it, newest first: which
    stage a slow night spent its time in, and since which night."""
    per_stage = ", ".join(
        f"sum(stages.seconds) filter (where stages.stage = '{name}')" for name in TIMED_STAGES
    )
    rows = wh.rows(
        f"""
        with stages as (
            select run_id, stage, epoch(finished_at - started_at) as seconds from run_stages
        )
        select runs.run_id, runs.as_of_date, {per_stage}, sum(stages.seconds)
        from runs
        inner join stages on stages.run_id = runs.run_id
        where runs.run_id = ? or (runs.status = 'published' and runs.started_at < ?)
        group by runs.run_id, runs.as_of_date, runs.started_at
        order by runs.started_at desc
        limit 8
        """,
        [run.run_id, run.started_at],
    )
    return make_table(
        "stage_times",
        ["run", "as of", *TIMED_STAGES, "total"],
        rows,
        "Seconds per stage (run_stages), this run and the published runs before it: start = "
        "copying the published warehouse, publish = writing the Parquet snapshots; the report "
        "itself is not timed.",
    )


def _layer_tables(wh: Warehouse) -> list[tuple[str, str]]:
    names = sorted(wh.relations)
    layers = [
        ("raw", [n for n in names if n.startswith("raw_")]),
        ("staging", [n for n in names if n.startswith("stg_")]),
        ("identity", [n for n in IDENTITY_TABLES if n in wh.relations]),
        ("core", [n for n in CORE_TABLES if n in wh.relations]),
        ("marts", [n for n in MART_TABLES if n in wh.relations]),
    ]
    return [(layer, name) for layer, tables in layers for name in tables]


def rows_per_stage(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """2. Rows read/loaded/quarantined per source, then rows per warehouse table."""
    section = Section("stages", "Rows per stage")
    if not wh.has("stg_ingest_files"):
        section.skip(missing("stg_ingest_files"))
    else:
        # a warehouse from before withheld values has no such table: none were withheld
        withheld = "withheld_values" if wh.has("withheld_values") else "(select null as source)"
        sources = wh.rows(
            f"""
            with withheld as (
                select source, count(*) as n from {withheld} group by source
            )
            select f.source, any_value(f.kind), count(*), sum(f.rows_read)::bigint,
                   sum(f.rows_loaded)::bigint, sum(f.rows_quarantined)::bigint,
                   coalesce(any_value(w.n), 0)::bigint
            from stg_ingest_files as f
            left join withheld as w on w.source = f.source
            group by f.source order by f.source
            """
        )
        if not sources:
            section.skip(empty("stg_ingest_files", "no file has been loaded yet"))
        else:
            section.add(
                make_table(
                    "sources",
                    ["source", "kind", "files", "read", "loaded", "quarantined", "withheld"],
                    sources,
                    "Per source, the version of each file the warehouse holds now (the latest "
                    "load of every file name): read = loaded + quarantined; withheld: values "
                    "kept out of rows that loaded (table withheld_values).",
                )
            )
            if draw:
                section.add(
                    Chart(
                        charts.hbar(
                            [r[0] for r in sources],
                            {
                                "loaded": [r[4] for r in sources],
                                "quarantined": [r[5] for r in sources],
                            },
                            "Rows per source: loaded and quarantined",
                            "rows",
                            colors=[charts.BLUE, charts.RED],
                            notes=[f"{r[4]:,} + {r[5]:,} quarantined" for r in sources],
                        ),
                        "Stacked bars of loaded and quarantined rows per source",
                    )
                )
    exports = _snapshot_exports(wh, run)
    if exports is not None:
        section.add(exports)
    tables = _layer_tables(wh)
    if not tables:
        return section.skip("Not shown: the warehouse has no pipeline tables yet.")
    counts = [(layer, name, wh.count(name)) for layer, name in tables]
    section.add(make_table("tables", ["layer", "table", "rows"], counts))
    if draw:
        layer_color = dict(
            zip(
                ("raw", "staging", "identity", "core", "marts"),
                (charts.GREY, charts.SKY, charts.PURPLE, charts.BLUE, charts.GREEN),
                strict=True,
            )
        )
        section.add(
            Chart(
                _table_rows_chart(counts, layer_color),
                "Rows per warehouse table, coloured by layer, log scale",
                "Colour: raw grey, staging light blue, identity purple, core blue, "
                "marts green. Log scale.",
            )
        )
    return section


def _snapshot_exports(wh: Warehouse, run: RunInfo) -> Table | None:
    """The run's new snapshot exports against the ones before (`snapshot_changes`, see
    src/ccv/ingest/export_changes.py); None when the run loaded none."""
    if not run.run_id or not wh.has("snapshot_changes"):
        return None
    rows = wh.rows(
        """
        select source, export, records, new, changed, changed_unmapped_only, gone,
               array_to_string(unmapped_changed, ', ')
        from snapshot_changes where run_id = ? order by source
        """,
        [run.run_id],
    )
    if not rows:
        return None
    return make_table(
        "snapshot_exports",
        ["source", "export", "records", "new", "changed", "only unmapped", "gone", "columns"],
        [[*r[:7], r[7] or None] for r in rows],
        "Each snapshot export loaded by this run against the export before it: records new, "
        "changed, and gone since; 'only unmapped': changed in unmapped columns alone (kept in "
        "`extra`), which still makes a record a new version, staged and kept again; "
        "'columns': those that changed in at least half of them. If most re-sent records "
        "change only there, a column changes with every export (an export time, a counter): "
        "list it in the source's drop_columns.",
    )


def _table_rows_chart(counts: list[tuple[str, str, int]], layer_color: dict[str, str]) -> str:
    # one series per layer so each layer gets its colour and a legend entry
    labels = [name for _, name, _ in counts]
    series = {
        layer: [n if lay == layer else 0 for lay, _, n in counts]
        for layer in dict.fromkeys(lay for lay, _, _ in counts)
    }
    return charts.hbar(
        labels,
        series,
        "Rows per warehouse table",
        "rows (log scale)",
        colors=[layer_color[layer] for layer in series],
        log_x=True,
    )


def quarantine(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """3. Quarantined rows by source and rule, with sample rows; values withheld from rows
    that loaded."""
    section = Section("quarantine", "Quarantine")
    withheld = _withheld_values(wh, run)
    reason = wh.absent_or_empty("quarantine", why="every row read passed its contract")
    if reason and withheld:
        section.add(withheld)
        return section
    if reason:
        return section.skip(reason)
    reasons = wh.rows(
        """
        select source, rule, count(*)::bigint,
               count(*) filter (where run_id = ?)::bigint,
               count(distinct source_file)::bigint
        from quarantine group by all order by 3 desc, source, rule
        """,
        [run.run_id],
    )
    section.add(
        Facts(
            [
                ("Quarantined rows", fmt(sum(r[2] for r in reasons))),
                ("of which from this run's loads", fmt(sum(r[3] for r in reasons))),
                ("Rules broken", fmt(len({r[1] for r in reasons}))),
            ]
        )
    )
    section.add(
        make_table(
            "quarantine_reasons",
            ["source", "rule", "rows", "this run", "files"],
            reasons,
            "Rows in quarantine now, by source and contract rule (see README, Data quality).",
        )
    )
    if draw:
        rules = list(dict.fromkeys(r[1] for r in reasons))
        totals = {rule: sum(r[2] for r in reasons if r[1] == rule) for rule in rules}
        rules.sort(key=lambda rule: -totals[rule])
        sources = sorted({r[0] for r in reasons})
        series = {
            src: [sum(r[2] for r in reasons if r[0] == src and r[1] == rule) for rule in rules]
            for src in sources
        }
        section.add(
            Chart(
                charts.hbar(rules, series, "Quarantined rows by rule and source", "rows"),
                "Quarantined rows per rule, stacked by source",
            )
        )
    samples = wh.rows(
        f"""
        select source, source_file, row_number, field, rule, raw_value, message
        from quarantine
        qualify row_number() over (
            partition by rule order by (run_id = ?) desc, source, source_file, row_number
        ) = 1
        order by (run_id = ?) desc, source, rule
        limit {SAMPLE_ROWS}
        """,
        [run.run_id, run.run_id],
    )
    samples = [(r[0], PurePath(r[1]).name if r[1] else None, *r[2:]) for r in samples]
    section.add(
        make_table(
            "quarantine_samples",
            ["source", "file", "row", "field", "rule", "raw_value", "message"],
            samples,
            f"Sample rows, one per rule (up to {SAMPLE_ROWS}); the full rows are in "
            "quarantine.raw_record.",
        )
    )
    if withheld:
        section.add(withheld)
    return section


def _withheld_values(wh: Warehouse, run: RunInfo) -> Table | None:
    """The table of values withheld from rows that loaded without them (None: there are none)."""
    if wh.absent_or_empty("withheld_values", why="none"):
        return None
    rows = wh.rows(
        """
        select source, field, rule, count(*)::bigint,
               count(*) filter (where run_id = ?)::bigint, count(distinct source_file)::bigint
        from withheld_values group by all order by 4 desc, source, field, rule
        """,
        [run.run_id],
    )
    return make_table(
        "withheld_values",
        ["source", "field", "rule", "values", "this run", "files"],
        rows,
        "Values withheld from rows that loaded without them (a bad e-mail or birth date costs "
        "the value, not the record; table withheld_values, see README, Data quality).",
    )


def identity(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """4. Records vs customers, cluster sizes, match scores, identity events."""
    section = Section("identity", "Identity resolution")
    reason = wh.absent_or_empty("customer_xref")
    if reason:
        section.skip(reason)
    else:
        # cluster sizes: the customers table counts each customer's crosswalk rows already
        # (`record_count`, checked against the crosswalk by the tests), a million rows instead of
        # a pass over the crosswalk's eleven million; older warehouses count the crosswalk
        sizes_sql = (
            "select customer_id, record_count as size from customers"
            if wh.has("customers", "record_count")
            else "select customer_id, count(*) as size from customer_xref group by customer_id"
        )
        by_size = wh.rows(
            f"""
            select customer_id is null, size, count(*)::bigint from ({sizes_sql})
            group by all order by size
            """
        )
        records = sum(size * n for _, size, n in by_size)
        sizes = [(size, n) for unassigned, size, n in by_size if not unassigned]
        customers = sum(n for _, n in sizes)
        facts = [
            ("Source records", fmt(records)),
            ("Customers (clusters)", fmt(customers)),
            ("Records per customer", fmt(records / customers if customers else None)),
            ("Single-record customers", fmt(next((n for s, n in sizes if s == 1), 0))),
            ("Largest cluster", fmt(max((s for s, _ in sizes), default=0))),
        ]
        if wh.has("customers"):
            facts.insert(2, ("Rows in customers", fmt(wh.count("customers"))))
        section.add(Facts(facts))
        work = _identity_work(wh, run)
        if work is not None:
            section.add(work)
        by_source = wh.rows(
            """
            select source, record_kind, count(*)::bigint, count(distinct customer_id)::bigint
            from customer_xref group by all order by source, record_kind
            """
        )
        section.add(
            make_table(
                "identity_sources",
                ["source", "record kind", "records", "customers"],
                by_source,
                "Source records linked to a customer, per source.",
            )
        )
        if wh.has("customer_xref", "match_rule"):
            rules = wh.rows(
                "select match_rule, count(*)::bigint from customer_xref "
                "group by all order by 2 desc, 1"
            )
            section.add(make_table("match_rules", ["match rule", "records"], rules))
        if draw:
            section.add(
                Chart(
                    charts.bars(
                        [s for s, _ in sizes],
                        [n for _, n in sizes],
                        "Cluster size distribution",
                        "source records per customer",
                        "customers (log scale)",
                        colors=charts.PURPLE,
                        log_y=True,
                    ),
                    "Bar chart of customers by number of source records, log y",
                )
            )
    if not wh.has("match_evidence"):
        section.skip(missing("match_evidence") + " Match scores come with probabilistic matching.")
    else:
        reason = wh.absent_or_empty("match_evidence", "match_weight")
        weights = (
            np.empty(0)
            if reason
            else wh.array("select match_weight from match_evidence where match_weight is not null")
        )
        if reason or not len(weights):
            section.skip(reason or empty("match_evidence.match_weight"))
        else:
            arr = weights.astype(float)
            section.add(
                Facts(
                    [
                        ("Scored pairs", fmt(len(weights))),
                        (
                            "Match weight min / median / max",
                            f"{arr.min():.2f} / {np.median(arr):.2f} / {arr.max():.2f}",
                        ),
                    ]
                )
            )
            if draw:
                section.add(
                    Chart(
                        charts.histogram(
                            arr,
                            "Match weight distribution (compared record pairs)",
                            "match_weight",
                            "pairs (log scale)",
                            log_y=True,
                            color=charts.PURPLE,
                        ),
                        "Histogram of match weights of compared record pairs",
                    )
                )
    if not wh.has("identity_events"):
        return section.skip(missing("identity_events"))
    events = wh.rows(
        """
        select event_type, count(*)::bigint, count(distinct customer_id)::bigint
        from identity_events where run_id = ? group by all order by 2 desc, 1
        """,
        [run.run_id],
    )
    if not events:
        earlier = wh.count("identity_events")
        return section.skip(
            "No identity events in this run: no customer was created, merged or split"
            + (f" ({earlier:,} events of earlier runs are in identity_events)." if earlier else ".")
        )
    section.add(
        make_table(
            "identity_events",
            ["event type", "events", "customers"],
            events,
            "Identity events of this run (identity_events).",
        )
    )
    return section


def _identity_work(wh: Warehouse, run: RunInfo) -> Facts | None:
    """What the run's identity resolution computed (`identity_runs`): on an incremental night
    a small part of the records and pairs, on a full one all of them — how an operator sees
    which kind of night it was, and what it cost."""
    if not run.run_id or not wh.has("identity_runs", "reclustered", "records_read"):
        return None
    rows = wh.rows(
        """
        select records, standardised, removed, candidate_pairs, pairs_compared, reclustered,
               params, records_read
        from identity_runs where run_id = ?
        """,
        [run.run_id],
    )
    if not rows:
        return None
    records, standardised, removed, pairs, compared, reclustered, params, read = rows[-1]
    return Facts(
        [
            # all, or the neighbourhood of the night's changes (an unchanged night reads none)
            ("Records read by this run", f"{fmt(read or 0)} of {fmt(records)}"),
            ("Records standardised by this run", f"{fmt(standardised)} of {fmt(records)}"),
            ("Records gone since the last run", fmt(removed)),
            ("Candidate pairs compared by this run", f"{fmt(compared)} of {fmt(pairs)}"),
            ("Records re-clustered by this run", f"{fmt(reclustered)} of {fmt(records)}"),
            # estimated | reused | shipped | none | unchanged (nothing to resolve)
            ("Match parameters", params),
        ]
    )


def _segment_source(wh: Warehouse) -> str | None:
    for table in ("customer_360", "loyalty_segments"):
        if wh.has(table, "rfm_segment", "loyalty_cell") and wh.count(table):
            return table
    return None


def _order(values: list[tuple], canonical: Sequence[str]) -> list[tuple]:
    rank = {v: i for i, v in enumerate(canonical)}
    return sorted(values, key=lambda r: (rank.get(r[0], len(rank)), -r[1], str(r[0])))


def segments(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """5. Customers per RFM segment and loyalty cell; moves since the previous run."""
    section = Section("segments", "Segments")
    table = _segment_source(wh)
    if table is None:
        section.skip(
            "Not shown: neither customer_360 nor loyalty_segments exists with rows "
            "(rfm_segment, loyalty_cell)."
        )
    else:
        rfm = _order(
            wh.rows(
                f"select coalesce(rfm_segment, '{NO_RFM_SEGMENT}'), count(*)::bigint "
                f"from {table} group by all"
            ),
            (*RFM_SEGMENTS, NO_RFM_SEGMENT),
        )
        cells = _order(
            wh.rows(
                f"select coalesce(loyalty_cell, '(none)'), count(*)::bigint "
                f"from {table} group by all"
            ),
            LOYALTY_CELLS,
        )
        section.add(
            make_table(
                "rfm_segments",
                ["rfm_segment", "customers"],
                rfm,
                f"Customers per RFM segment ({table}).",
            )
        )
        section.add(
            make_table(
                "loyalty_cells",
                ["loyalty_cell", "customers"],
                cells,
                f"Customers per loyalty cell ({table}).",
            )
        )
        if draw:
            section.add(
                Chart(
                    charts.grouped_hbars(
                        [
                            ("Customers per RFM segment", [r[0] for r in rfm], [r[1] for r in rfm]),
                            (
                                "Customers per loyalty cell",
                                [r[0] for r in cells],
                                [r[1] for r in cells],
                            ),
                        ]
                    ),
                    "Bar charts of customers per RFM segment and per loyalty cell",
                )
            )
    reason = wh.absent_or_empty(
        "segment_moves", why="no customer changed segment, or this is the first run"
    )
    if reason:
        return section.skip(reason)
    moves = wh.rows(
        f"""
        with counted as (
            select dimension, coalesce(from_value, '(none)') as from_value,
                   coalesce(to_value, '(none)') as to_value, count(*)::bigint as customers
            from segment_moves group by 1, 2, 3
        )
        select dimension, from_value, to_value, customers from counted
        qualify row_number() over (
            partition by dimension order by customers desc, from_value, to_value
        ) <= {MAX_MOVES_PER_DIMENSION}
        order by dimension, customers desc, from_value, to_value
        """
    )
    totals = wh.rows(
        "select dimension, count(*)::bigint from segment_moves group by all order by 1"
    )
    section.add(Facts([(f"Moves in {d}", fmt(n)) for d, n in totals]))
    section.add(
        make_table(
            "segment_moves",
            ["dimension", "from", "to", "customers"],
            moves,
            f"Moves since the previous run's snapshot (segment_moves), the "
            f"{MAX_MOVES_PER_DIMENSION} largest per dimension; (none) = new or merged-away "
            "customer, or no order in the RFM window.",
        )
    )
    return section


def rfm_heatmap(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """6. Customers and mean monetary value per R score × F score."""
    section = Section("rfm", "RFM heat map")
    reason = wh.absent_or_empty("rfm_scores", "r_score", "f_score", "monetary")
    if reason:
        return section.skip(reason)
    cells = wh.rows(
        """
        select r_score, f_score, count(*)::bigint, avg(monetary)::double
        from rfm_scores where r_score between 1 and 5 and f_score between 1 and 5
        group by all
        """
    )
    total, monetary = wh.rows("select count(*), sum(monetary)::double from rfm_scores")[0]
    section.add(
        Facts(
            [
                ("Customers scored", fmt(total)),
                ("Monetary in the RFM window", fmt(monetary)),
            ]
        )
    )
    if draw:
        scores = [5, 4, 3, 2, 1]  # best recency on top
        counts = np.zeros((5, 5))
        notes = [["0"] * 5 for _ in scores]
        for r, f, n, mean in cells:
            i, j = scores.index(r), f - 1
            counts[i, j] = n
            notes[i][j] = f"{n:,}\n{charts.nice_number(mean)}"
        section.add(
            Chart(
                charts.heatmap(
                    counts,
                    notes,
                    scores,
                    [1, 2, 3, 4, 5],
                    "Customers per R × F score (second line: mean monetary)",
                    "F score (frequency, 5 = most orders)",
                    "R score (5 = most recent)",
                ),
                "Heat map of customer counts per recency and frequency score",
                "Each cell: customers, and their mean monetary value in the RFM window.",
            )
        )
    return section


def nps(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """7. NPS answers 0–10 and the company NPS."""
    section = Section("nps", "NPS")
    summary_columns = ("as_of_date", "responses", "promoters", "passives", "detractors", "nps")
    if wh.has("nps_summary", *summary_columns) and wh.count("nps_summary"):
        row = wh.rows(
            """
            select as_of_date, responses, promoters, passives, detractors, nps
            from nps_summary order by as_of_date desc limit 1
            """
        )[0]
        section.add(
            Facts(
                [
                    (
                        f"Company NPS (nps_summary, 12 months to {fmt(row[0])})",
                        _one_decimal(row[5]),
                    ),
                    ("Responses in those 12 months", fmt(row[1])),
                    ("Promoters / passives / detractors", " / ".join(fmt(v) for v in row[2:5])),
                ]
            )
        )
    else:
        section.skip(
            (missing("nps_summary") if not wh.has("nps_summary") else empty("nps_summary"))
            + " The chart below counts every answer in survey_responses."
        )
    reason = wh.absent_or_empty("survey_responses", "nps", why="no survey was loaded")
    if reason:
        return section.skip(reason)
    answers = dict(
        wh.rows(
            "select nps::integer, count(*)::bigint from survey_responses "
            "where nps between 0 and 10 group by all"
        )
    )
    if not answers:
        return section.skip("Not shown: no survey response has an NPS answer.")
    counts = [answers.get(score, 0) for score in range(11)]
    total = sum(counts)
    promoters, detractors = sum(counts[9:]), sum(counts[:7])
    section.add(
        Facts(
            [
                (
                    "NPS over every answer in survey_responses (the chart)",
                    _one_decimal(100 * (promoters - detractors) / total),
                ),
                ("Answers (all time)", fmt(total)),
            ]
        )
    )
    if draw:
        colors = [charts.RED] * 7 + [charts.ORANGE] * 2 + [charts.GREEN] * 2
        section.add(
            Chart(
                charts.bars(
                    list(range(11)),
                    counts,
                    "NPS answers (all survey responses)",
                    "answer: 0–6 detractor (red), 7–8 passive (amber), 9–10 promoter (green)",
                    "responses",
                    colors=colors,
                ),
                "Bar chart of NPS answers 0 to 10, coloured detractor, passive, promoter",
            )
        )
    return section


def clv(wh: Warehouse, run: RunInfo, draw: bool) -> Section:
    """8. The distribution of predicted customer lifetime value."""
    section = Section("clv", "Customer lifetime value")
    reason = wh.absent_or_empty("customer_value", "clv")
    if reason:
        return section.skip(reason)
    values = [v for (v,) in wh.rows("select clv::double from customer_value where clv is not null")]
    customers = wh.count("customer_value")
    if not values:
        return section.skip(
            "Not shown: no customer has a CLV — the model was not fitted (too few buyers or a "
            "degenerate fit) or nobody has a completed order."
        )
    arr = np.asarray(values)
    p99 = float(np.percentile(arr, 99))
    section.add(
        Facts(
            [
                ("Customers with a CLV", f"{len(arr):,} of {customers:,}"),
                ("Total CLV", fmt(float(arr.sum()))),
                ("Mean / median", f"{fmt(float(arr.mean()))} / {fmt(float(np.median(arr)))}"),
                ("90th / 99th percentile", f"{fmt(float(np.percentile(arr, 90)))} / {fmt(p99)}"),
                ("Largest", fmt(float(arr.max()))),
            ]
        )
    )
    if draw:
        clipped = np.minimum(arr, p99) if len(arr) >= 100 else arr
        section.add(
            Chart(
                charts.histogram(
                    clipped,
                    "Predicted CLV per customer",
                    "clv (expected revenue)",
                    color=charts.GREEN,
                ),
                "Histogram of predicted customer lifetime value",
                "Expected revenue over the CLV horizon (customer_value.clv)"
                + (
                    "; values above the 99th percentile are counted in the last bar."
                    if len(arr) >= 100
                    else "."
                ),
            )
        )
    return section


SECTIONS: tuple[SectionFn, ...] = (
    run_header,
    rows_per_stage,
    quarantine,
    identity,
    segments,
    rfm_heatmap,
    nps,
    clv,
)
SECTION_TITLES = (
    "Run",
    "Rows per stage",
    "Quarantine",
    "Identity resolution",
    "Segments",
    "RFM heat map",
    "NPS",
    "Customer lifetime value",
)


def collect(
    con: duckdb.DuckDBPyConnection, run_id: str | None, draw: bool
) -> tuple[RunInfo, list[Section]]:
    """The run and every section, in report order."""
    wh = Warehouse(con)
    run = resolve_run(wh, run_id)
    return run, [fn(wh, run, draw) for fn in SECTIONS]
