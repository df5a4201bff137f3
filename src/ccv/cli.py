"""The `ccv` command line: the one place where the config file is read and errors become exit codes.

Exit codes: 0 success, 1 the run failed (a mandatory source, a data check), 2 bad config or usage.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import datetime as dt
import errno
import os
import sys
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ccv.activation import ExportError, FilterRejected, export_segment
from ccv.config import ConfigError, IdentityConfig, load_config
from ccv.identity.explain import ExplainError, explain_customer, explain_pair
from ccv.identity.standalone import (
    FIELD_SYNONYMS,
    ResolveInputError,
    resolve_files,
    write_parquet,
)
from ccv.ingest.load import IngestError
from ccv.pipeline import RunSummary
from ccv.privacy.access import subject_access
from ccv.privacy.erasure import forget as forget_person
from ccv.progress import progress_bars
from ccv.reporting import ReportError, write_report
from ccv.warehouse import versions
from ccv.warehouse.lock import WarehouseLock, WarehouseLocked
from ccv.warehouse.models import DataCheckError

app = typer.Typer(
    help="ccv: one record per customer, from every place they leave data.",
    no_args_is_help=True,
    add_completion=False,
    # help texts name config sections, e.g. "[warehouse] keep_versions": in rich's markup
    # "[warehouse]" is a style tag and printed as nothing, in Markdown it is text
    rich_markup_mode="markdown",
)
# no markup: what ccv prints (values, names, file names, messages, config sections such as
# "[warehouse]") may hold "[...]", which rich would take for a style tag and drop; styled words
# go through `_styled`
console = Console(markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)


def _quiet_teardown() -> None:
    """Hide what the interpreter prints on stderr while it shuts down after a Prefect run.

    Why: Prefect leaves daemon threads alive at exit, so Python cannot tear the duckdb module
    down cleanly, and nanobind (DuckDB's bindings) then reports each of the module's objects
    as "leaked": ~100 lines after every run, none of them about the run. Call it before
    Prefect starts: exit handlers run last-registered first, so Prefect's own (stopping the
    temporary server, flushing its logs) still run and print before this one closes stderr.
    """

    def close_stderr() -> None:
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

    atexit.register(close_stderr)


def _styled(label: str, style: str = "bold red", rest: str = "") -> Text:
    """`label` in `style`, then `rest` as it is."""
    return Text.assemble((label, style), rest)


ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Config file (TOML).")]


def _load(config: Path):
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(_styled("config error", rest=f": {exc}"), highlight=False)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: ConfigOption = Path("ccv.toml"),
    as_of: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="As-of date (default: the config's rule)."),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild from all input files.")
    ] = False,
) -> None:
    """Run the nightly flow: ingest, resolve, build and publish."""
    _load(config)  # fail fast, before Prefect starts, on a bad config
    _quiet_teardown()
    from flows.nightly import nightly

    try:
        with progress_bars(err):
            summary = nightly(
                config_path=str(config),
                as_of=as_of.date() if as_of else None,
                full_refresh=full_refresh,
            )
    except (WarehouseLocked, versions.VersionError) as exc:
        err.print(_styled("not started", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    except (IngestError, DataCheckError) as exc:
        err.print(_styled("run failed, nothing published", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    except (OSError, duckdb.IOException) as exc:
        if getattr(exc, "errno", None) != errno.ENOSPC and "No space left" not in str(exc):
            raise
        err.print(
            _styled(
                "run failed, nothing published",
                rest=f": the disk filled up ({exc}); free space or lower [warehouse] "
                "keep_versions, then run again",
            ),
            highlight=False,
        )
        raise typer.Exit(1) from None
    print_summary(summary)


@app.command()
def serve(config: ConfigOption = Path("ccv.toml")) -> None:
    """Serve the scheduled `nightly` deployment (cron from [schedule]); runs until stopped."""
    cfg = _load(config)
    _quiet_teardown()
    from prefect import serve as prefect_serve

    from flows.nightly import deployment

    prefect_serve(deployment(cfg, config.resolve()))


@app.command("resolve")
def resolve_command(
    inputs: Annotated[list[Path], typer.Argument(help="Customer files (CSV or Parquet).")],
    id_columns: Annotated[
        list[str],
        typer.Option("--id", help="Column identifying a row: once for all inputs, or once each."),
    ],
    out: Annotated[Path, typer.Option(help="Output Parquet: record_id, source, customer_id.")],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, e.g. email='E-mail'; repeatable."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config for [identity] settings.")
    ] = None,
) -> None:
    """Resolve any customer file(s) into customer ids, without a warehouse."""
    identity = _load(config).identity if config else IdentityConfig()
    mapping = {}
    for pair in map_ or []:
        field, sep, column = pair.partition("=")
        if not sep or field not in FIELD_SYNONYMS:
            err.print(
                _styled(
                    "bad --map",
                    rest=f" {pair!r}: use FIELD=COLUMN with FIELD one of "
                    f"{', '.join(FIELD_SYNONYMS)}",
                )
            )
            raise typer.Exit(2)
        mapping[field] = column
    if len(id_columns) not in (1, len(inputs)):
        err.print(_styled("--id", rest=f" given {len(id_columns)} times for {len(inputs)} inputs"))
        raise typer.Exit(2)
    ids = id_columns * len(inputs) if len(id_columns) == 1 else id_columns
    with console.status("resolving") as status:
        try:
            result = resolve_files(inputs, ids, mapping, identity, status.update)
        except ResolveInputError as exc:
            err.print(_styled("cannot resolve", rest=f": {exc}"), highlight=False)
            raise typer.Exit(2) from None
        write_parquet(result, out)
    console.print(f"{len(result):,} records → {result['customer_id'].nunique():,} customers: {out}")


def _published_layout(config: Path) -> versions.Layout:
    """The warehouse layout of `config`; exit 1 with advice when nothing is published yet."""
    layout = versions.Layout.from_config(_load(config))
    if not layout.db_link.exists():
        err.print(
            _styled("no published warehouse", rest=f" at {layout.db_link}: run `ccv run` first")
        )
        raise typer.Exit(1)
    return layout


def _published(config: Path):
    """A read-only connection to the published version: the file the link names now (a run
    publishing meanwhile does not change it under the session), its `<mart>_history` views on
    the Parquet beside it — also in a moved project, whose stored views name the old folder
    until the next night (`versions.history_views`)."""
    layout = _published_layout(config)
    db = layout.db_link.resolve()
    con = duckdb.connect(str(db), read_only=True)
    # the marts folder named as a night names it, by the config's paths and not the resolved
    # ones: with `warehouse/` a link to another disk the stored views stay the session's
    versions.history_views(con, layout.marts(db.parent.name), temp=True)
    return con


def _print_result(con, query: str, max_rows: int, output: str = "table") -> None:
    """Print a query's rows (at most `max_rows`; 0: all) as a table, one block per row when the
    columns would not fit the terminal as a table, or as CSV (`output`)."""
    try:
        result = con.execute(query)
    except duckdb.Error as exc:
        err.print(_styled("SQL error", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    if result.description is None:
        return
    columns = [d[0] for d in result.description]
    rows = result.fetchall() if max_rows <= 0 else result.fetchmany(max_rows + 1)
    cut = max_rows > 0 and len(rows) > max_rows
    rows = rows[:max_rows] if cut else rows
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    else:
        texts = [["NULL" if v is None else str(v) for v in row] for row in rows]
        if _fits_as_table(columns, texts, console.width):
            table = Table(*columns)
            for row in texts:
                table.add_row(*row)
            console.print(table)
        else:
            _print_records(columns, texts)
    if cut:
        err.print(f"(first {max_rows} rows shown; --max-rows 0 prints all)")


READABLE_WIDTH = 12
"""Characters a column needs at least to be read in a table: fewer, and rows print as blocks."""


def _fits_as_table(columns: list[str], rows: list[list[str]], width: int) -> bool:
    """Whether every column gets its header, or `READABLE_WIDTH` characters of its values,
    within `width` (a table of customer_360's ~60 columns would squeeze each to nothing)."""
    needed = 1
    for i, name in enumerate(columns):
        widest = max((len(row[i]) for row in rows), default=0)
        needed += min(max(len(name), widest), max(len(name), READABLE_WIDTH)) + 3
    return needed <= width


def _print_records(columns: list[str], rows: list[list[str]]) -> None:
    """One block per row, a line per column (as psql's expanded display)."""
    pad = max(len(name) for name in columns)
    for number, row in enumerate(rows, start=1):
        console.print(f"-[ row {number} ]-", highlight=False)
        for name, value in zip(columns, row, strict=True):
            console.print(f"{name:<{pad}} | {value}", highlight=False, soft_wrap=True)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="A SQL query against the published warehouse.")],
    config: ConfigOption = Path("ccv.toml"),
    max_rows: Annotated[int, typer.Option(help="Rows to print at most (0: all).")] = 50,
    output: Annotated[
        str,
        typer.Option(
            "--format", help="table (one block per row when the columns do not fit) | csv"
        ),
    ] = "table",
) -> None:
    """Query the published warehouse read-only (safe while a nightly run is publishing)."""
    if output not in ("table", "csv"):
        raise typer.BadParameter(f"{output!r}: use table or csv", param_hint="--format")
    with _published(config) as con:
        _print_result(con, query, max_rows, output)


@app.command()
def shell(config: ConfigOption = Path("ccv.toml")) -> None:
    """An interactive read-only SQL prompt on the published warehouse (end with Ctrl-D)."""
    with _published(config) as con:
        console.print("read-only session on the published warehouse; reopen to see a newer run")
        while True:
            try:
                query = console.input(_styled("ccv>", "bold", " "))
            except EOFError:
                break
            if query.strip():
                with contextlib.suppress(typer.Exit):
                    _print_result(con, query, 50)


@app.command()
def explain(
    customer_id: Annotated[str | None, typer.Argument(help="A customer_id to explain.")] = None,
    pair: Annotated[
        tuple[str, str] | None,
        typer.Option(help="Two records SOURCE:RECORD_ID to compare instead.", show_default=False),
    ] = None,
    config: ConfigOption = Path("ccv.toml"),
) -> None:
    """Why records were joined into a customer, or why two records were kept apart."""
    if (customer_id is None) == (pair is None):
        err.print(_styled("give either a CUSTOMER_ID or --pair A B"))
        raise typer.Exit(2)
    with _published(config) as con:
        try:
            result = explain_pair(con, *pair) if pair else explain_customer(con, customer_id)
        except ExplainError as exc:
            err.print(_styled(str(exc)), highlight=False)
            raise typer.Exit(1) from None
    if pair:
        verdict = "the same customer" if result["same_customer"] else "different customers"
        customers = ", ".join(dict.fromkeys(result["customers"]))  # one id when the same
        console.print(f"{pair[0]} and {pair[1]} are {verdict} ({customers})")
        if result["waterfall"]:
            console.print("\n".join(result["waterfall"].lines()), highlight=False)
            if result.get("guarded"):
                console.print(
                    "  a household guard capped this pair (different first name or "
                    "birth date while sharing contact details)"
                )
        else:
            console.print(result["note"])
        return
    golden = result["golden"]
    console.print(
        _styled(
            customer_id,
            "bold",
            ": " + ", ".join(f"{k}={v}" for k, v in golden.items() if k not in ("customer_id",)),
        ),
        highlight=False,
    )
    for kind, source, n, examples in result["records"]:
        console.print(f"  {n:>5} {kind} record(s) from {source}: {', '.join(examples)}")
    for record, field_name, rule, value in result["withheld"]:
        console.print(
            f"  withheld from {record}: {field_name} {value!r} ({rule}; the record loaded "
            "without it)",
            highlight=False,
        )
    scored = [w for w in result["links"] if w.prior is not None]
    deterministic = [w for w in result["links"] if w.prior is None]
    if not result["links"]:
        console.print("no links: a single record")
    if deterministic:
        console.print(f"{len(deterministic)} deterministic link(s) (identical identifier):")
        for waterfall in deterministic:
            console.print(
                f"  {waterfall.left} ↔ {waterfall.right}: same {waterfall.rule}", highlight=False
            )
    for waterfall in scored:
        console.print("\n".join(waterfall.lines()), highlight=False)
    for run_id, event, _other, reason in result["events"]:
        console.print(f"  event {run_id}: {event} ({reason})", highlight=False)


@app.command()
def report(
    config: ConfigOption = Path("ccv.toml"),
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("report.html"),
    run_id: Annotated[
        str | None, typer.Option(help="Run to report on (default: the latest published).")
    ] = None,
) -> None:
    """Write the self-contained HTML report of the published warehouse."""
    try:
        written = write_report(_published_layout(config).db_link, out, run_id)
    except ReportError as exc:
        err.print(_styled("no report", rest=f": {exc}"), highlight=False)
        raise typer.Exit(2) from None
    console.print(f"report: {written}")


@app.command()
def rollback(
    config: ConfigOption = Path("ccv.toml"),
    to: Annotated[
        str | None, typer.Option(help="Run id to publish again (default: the previous one).")
    ] = None,
) -> None:
    """Publish an earlier kept version of the warehouse again (see `[warehouse] keep_versions`)."""
    layout = versions.Layout.from_config(_load(config))
    try:
        with WarehouseLock(layout.lock_path, "rollback"):
            restored = versions.rollback(layout, to)
    except (WarehouseLocked, versions.VersionError) as exc:
        err.print(_styled("rollback refused", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    console.print(f"published version {restored} again ({layout.db_link})")


@app.command("versions")
def list_versions(config: ConfigOption = Path("ccv.toml")) -> None:
    """List the kept published versions; the current one is marked."""
    layout = versions.Layout.from_config(_load(config))
    current = versions.current_run_id(layout)
    # plain lines, not a table: version ids are copied into `ccv rollback --to`, never cut
    line = "{:1} {:<22}  {:<10}  {:<16}  {:>10}  {:>8}  {}"
    header = line.format("", "version", "as of", "published", "customers", "size", "made by")
    console.print(header, soft_wrap=True)
    for run_id in versions.published_versions(layout):
        about = versions.describe(layout, run_id)
        console.print(
            line.format(
                "*" if run_id == current else "",
                run_id,
                str(about.as_of_date or "?"),
                f"{about.published_at:%Y-%m-%d %H:%M}" if about.published_at else "?",
                f"{about.customers:,}" if about.customers is not None else "?",
                f"{about.size / 1e9:.2f} GB",
                about.made_by,
            ),
            highlight=False,
            soft_wrap=True,
        )


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Option(help="Folder to write the files into.")] = Path(
        "data/sample"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 7,
    persons: Annotated[int, typer.Option(min=1, help="Number of true persons.")] = 1200,
    orders_per_person: Annotated[
        float | None,
        typer.Option(min=0.1, help="Scale order counts to this mean (default: as sampled, ~4.5)."),
    ] = None,
    surveys_per_person: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Survey answers per person (default: 1 per 3 buyers)."),
    ] = None,
) -> None:
    """Generate the realistic, dirty sample inputs (and their ground truth)."""
    from ccv.sample_data import generate

    out.mkdir(parents=True, exist_ok=True)
    counts = generate(
        out,
        seed=seed,
        persons=persons,
        orders_per_person=orders_per_person,
        surveys_per_person=surveys_per_person,
    )
    table = Table("file", "rows", title=f"sample data in {out}")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


# --- activation and privacy (docs/activation_and_privacy.md) ----------------------------------


@app.command("export")
def export_command(
    channel: Annotated[
        str, typer.Option(help="email | sms | postal | ads (ads: SHA-256 hashes only).")
    ],
    segment: Annotated[
        str | None,
        typer.Option(help="A value of rfm_segment, loyalty_cell or loyalty_stage."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(help='Boolean filter over customer_360 columns, e.g. "lifetime_orders > 2".'),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: [activation] export_dir).")
    ] = None,
    config: ConfigOption = Path("ccv.toml"),
) -> None:
    """Export the contactable customers of a segment for one channel (consent, cap, logged)."""
    cfg = _load(config)
    try:
        result = export_segment(
            cfg,
            segment=segment,
            where=where,
            channel=channel,
            fmt=fmt,
            out=out,
            triggered_by="cli",
        )
    except (ExportError, FilterRejected) as exc:
        err.print(_styled("export refused", rest=f": {exc}"), highlight=False)
        raise typer.Exit(2) from None
    excluded = ", ".join(f"{n:,} {reason}" for reason, n in result.excluded.items() if n)
    console.print(
        f"export {result.export_id}: {result.row_count:,} of {result.candidates:,} customers "
        f"→ {result.path} (sha256 {result.sha256[:12]}…); excluded: {excluded or 'none'}"
    )


def _one_person(email: str | None, phone: str | None, customer_id: str | None) -> None:
    if sum(v is not None for v in (email, phone, customer_id)) != 1:
        err.print(_styled("name the person by exactly one of --email, --phone, --customer-id"))
        raise typer.Exit(2)


EmailOption = Annotated[str | None, typer.Option(help="The person's email.")]
PhoneOption = Annotated[str | None, typer.Option(help="The person's phone.")]
CustomerOption = Annotated[str | None, typer.Option("--customer-id", help="A customer_id.")]
AllMatchesOption = Annotated[
    bool,
    typer.Option("--all-matches", help="Act on every customer holding the email / phone."),
]


@app.command()
def forget(
    email: EmailOption = None,
    phone: PhoneOption = None,
    customer_id: CustomerOption = None,
    all_matches: AllMatchesOption = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = Path("ccv.toml"),
) -> None:
    """Erase a person from the warehouse, every kept version and future loads (no rollback)."""
    _one_person(email, phone, customer_id)
    cfg = _load(config)
    if not yes:
        typer.confirm(
            "Erase this person everywhere? Every earlier warehouse version is deleted "
            "(no rollback to before the erasure).",
            abort=True,
        )
    try:
        result = forget_person(
            cfg, email=email, phone=phone, customer_id=customer_id, all_matches=all_matches
        )
    except WarehouseLocked as exc:
        err.print(_styled("not started", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        err.print(_styled("erasure refused", rest=f": {exc}"), highlight=False)
        raise typer.Exit(2) from None
    removed = sum(result.rows_removed.values()) + sum(result.parquet_rows_removed.values())
    console.print(
        f"request {result.request_id}: {result.customers} customer(s), {removed:,} rows removed; "
        f"published {result.published_version}; removed versions: "
        f"{', '.join(result.versions_removed) or 'none'}"
    )
    if not result.customers:
        future = "; future loads will quarantine rows with it" if email or phone else ""
        console.print(
            f"nobody in the published warehouse holds that identifier{future}; the older "
            "versions were removed all the same (one may still hold it, e.g. an address since "
            "changed)"
        )
    for export in result.exports_affected:
        err.print(
            _styled(
                "already sent",
                "yellow",
                f": export {export['export_id']} ({export['channel']}, "
                f"{export['exported_at']}) included this person: tell its recipient",
            ),
            highlight=False,
        )


@app.command("subject-access")
def subject_access_command(
    out: Annotated[Path, typer.Option(help="Output JSON file.")],
    email: EmailOption = None,
    phone: PhoneOption = None,
    customer_id: CustomerOption = None,
    all_matches: AllMatchesOption = False,
    config: ConfigOption = Path("ccv.toml"),
) -> None:
    """Write everything held about a person to one JSON file (right of access)."""
    _one_person(email, phone, customer_id)
    try:
        path = subject_access(
            _load(config),
            email=email,
            phone=phone,
            customer_id=customer_id,
            out=out,
            all_matches=all_matches,
        )
    except (FileNotFoundError, ValueError) as exc:
        err.print(_styled("subject access failed", rest=f": {exc}"), highlight=False)
        raise typer.Exit(1) from None
    console.print(f"subject access report: {path}")


def print_summary(summary: RunSummary) -> None:
    """Print what a run read, loaded, quarantined, resolved and published."""
    files = Table(
        "source",
        "files",
        "this run",
        "read",
        "loaded",
        "quarantined",
        "withheld",
        title=f"run {summary.run_id} (as of {summary.as_of})",
        caption="rows of the file versions now in the warehouse; withheld: values kept out of "
        "rows that loaded (table withheld_values)",
    )
    for s in summary.sources:
        files.add_row(
            s.source,
            str(s.files),
            s.statuses,
            f"{s.rows_read:,}",
            f"{s.rows_loaded:,}",
            f"{s.rows_quarantined:,}",
            f"{s.values_withheld:,}",
        )
    console.print(files)
    for f in summary.files:
        if f.message and f.status not in ("unchanged", "loaded"):
            err.print(_styled(f.source, "yellow", f": {f.source_file}: {f.status}: {f.message}"))
    if summary.resolve:
        work = summary.resolve.work
        if work and work.params == "unchanged":
            console.print("identity: inputs unchanged since the last resolve, which is kept")
        console.print(
            f"identity: {summary.resolve.records:,} records resolved into "
            f"{summary.resolve.customers:,} customers "
            f"({summary.resolve.anonymous_records:,} transactions without any identifier "
            "left unattributed)"
        )
        events = ", ".join(f"{n:,} {kind}" for kind, n in sorted(summary.resolve.events.items()))
        console.print(f"identity events: {events or 'none (no customer changed)'}")
    segments = Table("RFM segment", "customers", title="segments")
    for name, n in summary.segments.items():
        segments.add_row(name, f"{n:,}")
    console.print(segments)
    tables = ", ".join(f"{t} {n:,}" for t, n in summary.table_rows.items())
    console.print(f"tables: {tables}")
    console.print(f"warehouse: {summary.warehouse_path}")
    console.print(f"marts (Parquet): {summary.marts_dir}")
    if summary.report_path:
        console.print(f"report: {summary.report_path}")


if __name__ == "__main__":
    app()
