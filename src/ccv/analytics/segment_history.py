"""Keep one snapshot of every customer's segments per run, so `segment_moves` can diff runs.

`segment_history` is the only mart input that outlives a run: the build file starts as a copy of
the published warehouse, so the table carries over night to night. The pipeline creates it (empty
on the first run) before the marts build, and appends this run's snapshot after they built. A
re-run for the same as-of date replaces that date's snapshot instead of doubling it.

Only the latest `SNAPSHOTS_KEPT` snapshots stay: `segment_moves` reads the latest one before
the run's as-of date, while each snapshot is a row per customer (a million rows a night at a
million customers) in the DuckDB file that every run copies. The whole history is in the
published `loyalty_segments` Parquet snapshots (`loyalty_segments_history`, which carries the
same three segment columns per customer and as-of date) and is never pruned there.
"""

from __future__ import annotations

import datetime as dt

import duckdb

# snapshots kept: re-running any of the last seven as-of dates still finds the snapshot before it
SNAPSHOTS_KEPT = 8

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
    """Store today's segments from `loyalty_segments` as the snapshot of `as_of` and drop
    the snapshots before the latest `SNAPSHOTS_KEPT`; return the rows of `as_of`'s snapshot
    (0 when it is older than every kept one, as for a backfill of a long-past date).

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
    con.execute(
        """
        delete from segment_history where snapshot_on not in (
            select distinct snapshot_on from segment_history order by snapshot_on desc limit ?
        )
        """,
        [SNAPSHOTS_KEPT],
    )
    return con.execute(
        "select count(*) from segment_history where snapshot_on = ?", [as_of]
    ).fetchone()[0]
