"""Identity tables that persist from run to run: the id registry, the event log and the log of
what each run's resolve computed (`identity_runs`; the incremental state is in `incremental.py`).

`identity_records` is rebuilt every run, but the previous run's version is read first: its
record → customer id pairs are what stable ids are carried over from (see `stable_ids.py`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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
        state_signature varchar,          -- code + settings of the incremental state
        reclustered bigint,               -- records clustered tonight (see identity/scoped.py)
        records_read bigint               -- records in the night's frame (all, or the
                                          -- neighbourhood: identity/neighbourhood.py)
    )
    """,
    # warehouses from before the columns
    "alter table identity_runs add column if not exists reclustered bigint",
    "alter table identity_runs add column if not exists records_read bigint",
]


def ensure_identity_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the persistent identity tables if this warehouse has none yet."""
    for ddl in DDL:
        con.execute(ddl)


def has_last_records(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a run has written identity records (with their customers) before."""
    return bool(
        con.execute(
            "select count(*) from duckdb_columns() "
            "where table_name = 'identity_records' and column_name = 'customer_id'"
        ).fetchall()[0][0]
    )


@dataclass(frozen=True)
class LastRecords:
    """What last run's `identity_records` said of each of tonight's records."""

    customers: LastCustomers
    same: dict[str, np.ndarray]
    """per compared column: tonight's value is last run's (False for a record it lacked)"""


def last_records(
    con: duckdb.DuckDBPyConnection,
    records: pd.DataFrame,
    compared: tuple[str, ...] = (),
    gone_keys: str | None = None,
) -> LastRecords:
    """Last run's customer of each of `records` (record_kind, source, source_record_id), and
    whether each `compared` column of `records` still holds last run's value. Also leaves the
    keys of last run's records that are not among `records` in the temp table
    ``_gone_records`` (empty on a first run).

    Why in SQL, and all in one join: a million customers have ~3.7M identity records; looking
    each one's key up among last night's in pandas built and probed a hash table of millions
    of Python strings (~10 s a night), while DuckDB joins the keys in about a second, and only
    integers and flags return. The same join tells which rows of `identity_records` a delta
    night has to rewrite (`keyed_writes`).

    `gone_keys`: a table of the keys of the records gone tonight, when `records` are not all
    of tonight's (a neighbourhood night, `incremental.refresh_records`); it is dropped.
    """
    none = np.full(len(records), -1, dtype=np.int64)
    if not has_last_records(con):
        con.execute(
            "create or replace temp table _gone_records "
            "(record_kind varchar, source varchar, source_record_id varchar)"
        )
        return LastRecords(
            LastCustomers(none, pa.array([], pa.string()), np.zeros(0, dtype=np.int64)),
            {c: np.zeros(len(records), dtype=bool) for c in compared},
        )
    con.execute(
        """
        create or replace temp table _last_ids as
        select customer_id, count(*) as records, row_number() over () - 1 as code
        from identity_records group by customer_id
        """
    )
    key = ", ".join(KEY)
    keys = frame_to_arrow(records[[*KEY, *compared]]).append_column(
        "position", pa.array(np.arange(len(records), dtype=np.int64))
    )
    same = ", ".join(
        f"coalesce(k.{c} is not distinct from ir.{c}, false) as same_{c}" for c in compared
    )
    con.register("_tonight_keys", keys)
    try:
        found = con.execute(
            f"""
            select k.position, l.code{", " + same if compared else ""}
            from _tonight_keys as k
            join identity_records as ir using ({key})
            join _last_ids as l using (customer_id)
            """
        ).fetchnumpy()
        con.execute(
            f"create or replace temp table _gone_records as select {key} from {gone_keys}"
            if gone_keys
            else f"create or replace temp table _gone_records as select {key} "
            f"from identity_records anti join _tonight_keys using ({key})"
        )
        if gone_keys:
            con.execute(f"drop table {gone_keys}")
    finally:
        con.unregister("_tonight_keys")
    ids = read_arrow(con, "select customer_id, records from _last_ids order by code")
    con.execute("drop table _last_ids")
    code = none
    position = found["position"]
    code[position] = found["code"]
    flags = {}
    for column in compared:
        flags[column] = np.zeros(len(records), dtype=bool)
        flags[column][position] = found[f"same_{column}"]
    return LastRecords(
        LastCustomers(
            code,
            ids["customer_id"].combine_chunks().cast(pa.string()),
            ids["records"].to_numpy().astype(np.int64),
        ),
        flags,
    )


def id_registry(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every id ever minted, with the run that minted it (run ids sort by time); also any id of
    last run's identity records the registry lacks (none, normally), so that no id of theirs
    is minted again (`stable_ids.assign_known`)."""
    if not has_last_records(con):
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
    # a record key is "source:source_record_id"; split in SQL (a first night has a million
    # events, all without a record key: pandas' str.split took 1.2 s over them)
    con.register("_events", frame_to_arrow(assignment.events))
    con.execute(
        """
        insert into identity_events
        select
            ?, event_type, customer_id, other_customer_id,
            split_part(record_key, ':', 1),
            case when strpos(record_key, ':') > 0
                then substr(record_key, strpos(record_key, ':') + 1)
            end,
            reason, ?
        from _events
        """,
        [run_id, now],
    )
    con.unregister("_events")


def record_work(con: duckdb.DuckDBPyConnection, run_id: str, work: Work) -> None:
    """Append what this run's resolve computed to `identity_runs`."""
    con.execute("delete from identity_runs where run_id = ?", [run_id])
    con.execute(
        "insert into identity_runs by name select ? as run_id, ? as records, ? as standardised, "
        "? as removed, ? as candidate_pairs, ? as pairs_compared, ? as params, "
        "? as state_signature, ? as reclustered, ? as records_read",
        [
            run_id,
            work.records,
            work.standardised,
            work.removed,
            work.candidate_pairs,
            work.pairs_compared,
            work.params,
            work.state_signature,
            work.reclustered,
            work.records_read,
        ],
    )
