"""Keep one snapshot of every customer's segments per run, so `segment_moves` can diff runs.

`segment_history` is the only mart input that outlives a run: the build file starts as a copy of
the published warehouse, so the table carries over night to night. The pipeline creates it (empty
on the first run) before the marts build, and appends this run's snapshot after they built. A
re-run for the same as-of date replaces that date's snapshot instead of doubling it.
"""

from __future__ import annotations

import datetime as dt

import duckdb

DDL = """
create table if not exists segment_history (
    snapshot_on date not null,
    customer_id varchar not null,
    rfm_segment varchar,
    loyalty_cell varchar,
    loyalty_stage varchar
)
"""


def ensure_segment_history(con: duckdb.DuckDBPyConnection) -> None:
    """Create `segment_history` if it does not exist (call before building the marts)."""
    con.execute(DDL)


def snapshot_segments(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> int:
    """Store today's segments from `loyalty_segments` as the snapshot of `as_of`; return its rows.

    Call after the marts built and their checks passed.
    """
    ensure_segment_history(con)
    con.execute("delete from segment_history where snapshot_on = ?", [as_of])
    con.execute(
        """
        insert into segment_history
        select cast(? as date), customer_id, rfm_segment, loyalty_cell, loyalty_stage
        from loyalty_segments
        """,
        [as_of],
    )
    return con.execute(
        "select count(*) from segment_history where snapshot_on = ?", [as_of]
    ).fetchone()[0]
