"""The run report: a self-contained HTML file about the published warehouse (issue 7).

`build_report(con)` returns the HTML text, `write_report(db_path, out_path)` writes it atomically
from a read-only connection, `markdown_summary(con)` gives the short version for a Prefect
artifact; `write_report_and_summary` gives both from one pass over the warehouse (the nightly
run). See docs/report.md.
"""

from ccv.reporting.report import (
    build_report,
    markdown_summary,
    write_report,
    write_report_and_summary,
)
from ccv.reporting.sections import SECTION_TITLES, ReportError

__all__ = [
    "SECTION_TITLES",
    "ReportError",
    "build_report",
    "markdown_summary",
    "write_report",
    "write_report_and_summary",
]
