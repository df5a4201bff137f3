"""Build the run report (one self-contained HTML file) and its short markdown summary."""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import os
from importlib import metadata
from pathlib import Path

import duckdb
import jinja2

from ccv.reporting.sections import RunInfo, Section, Table, collect

TEMPLATES = Path(__file__).parent / "templates"
MD_TABLE_ROWS = 12

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,  # every value from the warehouse is escaped
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _version() -> str:
    try:
        return metadata.version("ccv")
    except metadata.PackageNotFoundError:
        return "dev"


def _db_name(con: duckdb.DuckDBPyConnection) -> str:
    rows = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchall()
    path = rows[0][0] if rows and rows[0][0] else None
    return Path(path).name if path else "an in-memory database"


def build_report(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> str:
    """The HTML report of `run_id` (default: the latest published run) from the warehouse `con`.

    Raises `ReportError` when `run_id` is given but not in the `runs` table.
    """
    return _html(con, *collect(con, run_id, draw=True))


def _html(con: duckdb.DuckDBPyConnection, run: RunInfo, sections: list[Section]) -> str:
    return _env.get_template("report.html.j2").render(
        run=run,
        sections=sections,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        db_name=_db_name(con),
        version=_version(),
    )


def write_report(db_path: Path, out_path: Path, run_id: str | None = None) -> Path:
    """Open the warehouse at `db_path` read-only and write the report to `out_path` atomically.

    The file appears complete or not at all (written to a temporary file in the same folder,
    then renamed over `out_path`). Returns `out_path`.
    """
    return write_report_and_summary(db_path, out_path, run_id)[0]


def write_report_and_summary(
    db_path: Path, out_path: Path, run_id: str | None = None
) -> tuple[Path, str]:
    """`write_report`, and the run's markdown summary (`markdown_summary`) from the same
    queries: the nightly run wants both, and querying a million-customer warehouse twice for
    them cost seconds."""
    db_path, out_path = Path(db_path), Path(out_path)
    if not db_path.exists():
        raise FileNotFoundError(f"no warehouse at {db_path}")
    # resolve the published-version symlink once, so the report reads a single version
    with duckdb.connect(str(db_path.resolve()), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        run, sections = collect(con, run_id, draw=True)
        text = _html(con, run, sections)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return out_path, _markdown(run, sections)


# --- markdown -----------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    # Prefect renders artifact markdown as HTML: escape markup, and pipes that would split cells
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table, limit: int = MD_TABLE_ROWS) -> list[str]:
    align = ["---:" if n else "---" for n in table.numeric]
    lines = [
        "| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows[:limit]]
    if len(table.rows) > limit:
        lines.append(f"\n_…and {len(table.rows) - limit} more rows in the HTML report._")
    return [*lines, ""]


def _md_section(section: Section, heading: str, tables: tuple[str, ...]) -> list[str]:
    lines = [f"**{heading}**", ""]
    facts = section.facts()
    if facts:
        lines += [
            "; ".join(f"{_md_cell(k)}: {_md_cell(v)}" for k, v in facts),
            "",
        ]
    for key in tables:
        table = section.table(key)
        if table is not None:
            lines += _md_table(table)
    lines += [f"_{_md_cell(text)}_" for text in section.skipped()]
    if lines[-1] != "":
        lines.append("")
    return lines


def _title(run: RunInfo) -> str:
    parts = [f"### ccv run {_md_cell(run.run_id or '(no run recorded)')}"]
    if run.as_of_date:
        parts.append(f"as of {run.as_of_date.isoformat()}")
    if run.status:
        parts.append(_md_cell(run.status))
    return " · ".join(parts)


def markdown_summary(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> str:
    """A short markdown summary for a Prefect artifact: rows per stage, quarantine reasons,
    identity events, segment sizes and moves."""
    return _markdown(*collect(con, run_id, draw=False))


def _markdown(run: RunInfo, sections: list[Section]) -> str:
    by_key = {s.key: s for s in sections}
    lines = [_title(run), ""]
    if (times := by_key["run"].table("stage_times")) is not None:
        lines += ["**Stage times (seconds)**", "", *_md_table(times)]
    lines += _md_section(by_key["stages"], "Rows per source", ("sources", "snapshot_exports"))
    lines += _md_section(
        by_key["quarantine"], "Quarantine reasons", ("quarantine_reasons", "withheld_values")
    )
    lines += _md_section(by_key["identity"], "Identity", ("identity_events",))
    lines += _md_section(
        by_key["segments"], "Segments", ("rfm_segments", "loyalty_cells", "segment_moves")
    )
    return "\n".join(lines).rstrip() + "\n"
