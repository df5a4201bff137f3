"""Identity tables that persist from run to run: the id registry, the event log and the log of
what each run's resolve computed (`identity_runs`; the incremental state is in `incremental.py`).

`identity_records` is rebuilt every run, but the previous run's version is read first: its
record → customer id pairs are what stable ids are carried over from (see `stable_ids.py`).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ccv.identity.frames import frame_to_arrow, read_arrow, read_frame
from ccv.identity.incremental import KEY, Work
from ccv.identity.stable_ids import Assignment, LastCustomers

DDL = [
    """
    create table if not exists customer_ids (
        customer_id varchar primary key,
        created_run_id varchar not null,
        created_at timestamp not null,
        retired_run_id varchar,
        merged_into varchar
    )
    """,
    """
    create table if not exists identity_events (
        run_id varchar not null,
        event_type varchar not null,   -- new | merge | split | record_moved
        customer_id varchar not null,
        other_customer_id varchar,
        source varchar,
        source_record_id varchar,
        reason varchar not null,
        occurred_at timestamp not null
    )
    """,
    """
    create table if not exists identity_runs (
        run_id varchar not null,
        records bigint not null,          -- identity records tonight
        standardised bigint not null,     -- new or changed records standardised tonight
        removed bigint not null,          -- records gone or replaced by a changed version
        candidate_pairs bigint not null,  -- candidate pairs among customer records
        pairs_compared bigint not null,   -- of which compared tonight (others kept their levels)
        params varchar not null,          -- estimated | reused | shipped | none
        state_signature varchar           -- code + settings of the incremental state
    )
    """,
]


def ensure_identity_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the persistent identity tables if this warehouse has none yet."""
    for ddl in DDL:
        con.execute(ddl)


def _has_last_records(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a run has written identity records (with their customers) before."""
    return bool(
        con.execute(
            "select count(*) from duckdb_columns() "
            "where table_name = 'identity_records' and column_name = 'customer_id'"
        ).fetchall()[0][0]
    )


def last_customers(con: duckdb.DuckDBPyConnection, records: pd.DataFrame) -> LastCustomers:
    """Last run's customer of each of `records` (record_kind, source, source_record_id): the
    previous side of `stable_ids.assign_known`; every code -1 on a first run.

    Why in SQL: a million customers have ~3.7M identity records; looking each one's key up
    among last night's in pandas built and probed a hash table of millions of Python strings
    (~10 s a night), while DuckDB joins the keys in about a second, and only integers return.
    """
    none = np.full(len(records), -1, dtype=np.int64)
    if not _has_last_records(con):
        return LastCustomers(none, pa.array([], pa.string()), np.zeros(0, dtype=np.int64))
    con.execute(
        """
        create or replace temp table _last_ids as
        select customer_id, count(*) as records, row_number() over () - 1 as code
        from identity_records group by customer_id
        """
    )
    keys = frame_to_arrow(records[list(KEY)]).append_column(
        "position", pa.array(np.arange(len(records), dtype=np.int64))
    )
    con.register("_tonight_keys", keys)
    try:
        found = con.execute(
            f"""
            select k.position, l.code
            from _tonight_keys as k
            join identity_records as ir using ({", ".join(KEY)})
            join _last_ids as l using (customer_id)
            """
        ).fetchnumpy()
    finally:
        con.unregister("_tonight_keys")
    ids = read_arrow(con, "select customer_id, records from _last_ids order by code")
    con.execute("drop table _last_ids")
    code = none
    code[found["position"]] = found["code"]
    return LastCustomers(
        code,
        ids["customer_id"].combine_chunks().cast(pa.string()),
        ids["records"].to_numpy().astype(np.int64),
    )


def id_registry(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every id ever minted, with the run that minted it (run ids sort by time); also any id of
    last run's identity records the registry lacks (none, normally), so that no id of theirs
    is minted again (`stable_ids.assign_known`)."""
    if not _has_last_records(con):
        return read_frame(con, "select customer_id, created_run_id from customer_ids")
    return read_frame(
        con,
        """
        select customer_id, created_run_id from customer_ids
        union all
        select distinct customer_id, null from identity_records
        anti join customer_ids using (customer_id)
        """,
    )


def record_assignment(
    con: duckdb.DuckDBPyConnection, assignment: Assignment, run_id: str, now: dt.datetime
) -> None:
    """Register new ids, retire merged ones and append this run's identity events."""
    con.execute("delete from identity_events where run_id = ?", [run_id])
    new_ids = assignment.new_ids.assign(created_run_id=run_id, created_at=now)
    con.register("_new_ids", frame_to_arrow(new_ids))
    con.execute(
        "insert into customer_ids (customer_id, created_run_id, created_at) "
        "select customer_id, created_run_id, created_at from _new_ids"
    )
    con.unregister("_new_ids")
    con.register("_retired", assignment.retired)
    con.execute(
        """
        update customer_ids set retired_run_id = ?, merged_into = r.merged_into
        from _retired r where customer_ids.customer_id = r.customer_id
        """,
        [run_id],
    )
    con.unregister("_retired")
    events = assignment.events.copy()
    split = events["record_key"].str.split(":", n=1, expand=True) if len(events) else None
    events["source"] = split[0] if split is not None else None
    events["source_record_id"] = split[1] if split is not None and 1 in split else None
    events["run_id"] = run_id
    events["occurred_at"] = now
    con.register("_events", frame_to_arrow(events))
    con.execute(
        """
        insert into identity_events
        select run_id, event_type, customer_id, other_customer_id, source, source_record_id,
               reason, occurred_at
        from _events
        """
    )
    con.unregister("_events")


def record_work(con: duckdb.DuckDBPyConnection, run_id: str, work: Work) -> None:
    """Append what this run's resolve computed to `identity_runs`."""
    con.execute("delete from identity_runs where run_id = ?", [run_id])
    con.execute(
        "insert into identity_runs values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            work.records,
            work.standardised,
            work.removed,
            work.candidate_pairs,
            work.pairs_compared,
            work.params,
            work.state_signature,
        ],
    )
