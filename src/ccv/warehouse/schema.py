"""Tables written by Python stages (not by `sql/`): raw loads, quarantine, logs, identity.

The SQL models read these; their columns are the contract between the Python stages and `sql/`.
Created with `if not exists` so a warehouse carried over from the last night keeps its history.
"""

from __future__ import annotations

import duckdb

from ccv.config import CANONICAL_FIELDS
from ccv.ingest.mapping import field_type

RAW_TABLES = {
    "customers": "raw_customers",
    "orders": "raw_orders",
    "surveys": "raw_survey_responses",
}

_LINEAGE = """
    run_id varchar not null,
    source varchar not null,
    source_file varchar not null,
    row_number bigint not null,
"""

DDL = [
    """
    create table if not exists quarantine (
        run_id varchar not null,
        source varchar not null,
        source_file varchar,
        row_number bigint,
        line_number bigint,
        field varchar,
        rule varchar not null,
        raw_value varchar,
        message varchar,
        raw_record json,
        quarantined_at timestamp not null
    )
    """,
    """
    create table if not exists ingest_log (
        run_id varchar not null,
        source varchar not null,
        kind varchar not null,
        source_file varchar not null,
        content_hash varchar,
        status varchar not null,
        rows_read bigint not null,
        rows_loaded bigint not null,
        rows_quarantined bigint not null,
        message varchar,
        started_at timestamp not null,
        finished_at timestamp not null
    )
    """,
    """
    create table if not exists runs (
        run_id varchar primary key,
        as_of_date date,
        started_at timestamp not null,
        finished_at timestamp,
        status varchar not null,
        full_refresh boolean not null
    )
    """,
]


def raw_table_ddl(kind: str) -> str:
    """DDL of the raw table for `kind`: lineage + every canonical field, typed."""
    fields = ",\n".join(f"    {f} {field_type(f)}" for f in CANONICAL_FIELDS[kind])
    return (
        f"create table if not exists {RAW_TABLES[kind]} (\n{_LINEAGE}{fields},\n"
        "    extra json,\n    loaded_at timestamp not null\n)"
    )


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the Python-written tables that do not exist yet."""
    for ddl in DDL:
        con.execute(ddl)
    for kind in RAW_TABLES:
        con.execute(raw_table_ddl(kind))
