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
    "consents": "raw_consents",
    "order_lines": "raw_order_lines",
}

# Columns a raw table carries besides lineage and canonical fields: set per source, not per row
# of the file, but stored per row so that later stages need no config to interpret a row.
RAW_EXTRA_COLUMNS = {
    "customers": {"phone_region": "varchar"},
    "order_lines": {"order_source": "varchar"},
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
        quarantined_at timestamp not null,
        record_key varchar
    )
    """,
    # Values withheld from rows that loaded without them (src/ccv/ingest/withheld.py): a bad
    # e-mail or birth date costs the value, not the record.
    """
    create table if not exists withheld_values (
        run_id varchar not null,
        source varchar not null,
        source_file varchar not null,
        row_number bigint not null,
        field varchar not null,
        rule varchar not null,
        raw_value varchar,
        message varchar not null,
        withheld_at timestamp not null,
        record_key varchar
    )
    """,
    # The configured sources as of the last ingest, so that SQL models can apply per-source
    # settings (snapshot loads, opt-in consents) without reading the config.
    """
    create table if not exists ingest_sources (
        source varchar primary key,
        kind varchar not null,
        load varchar not null,
        phone_region varchar,
        customer_source varchar,
        consents_from_opt_in boolean not null
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
        finished_at timestamp not null,
        file_size bigint,
        file_mtime_ns bigint
    )
    """,
    # Per night and snapshot source: its new export against the one before
    # (src/ccv/ingest/export_changes.py)
    """
    create table if not exists snapshot_changes (
        run_id varchar not null,
        source varchar not null,
        export varchar not null,
        previous_export varchar,
        records bigint not null,
        new bigint not null,
        changed bigint not null,
        changed_unmapped_only bigint not null,
        gone bigint not null,
        unmapped_changed varchar[] not null
    )
    """,
    # How long each stage of a run took (pipeline.stage): the run report's stage times
    """
    create table if not exists run_stages (
        run_id varchar not null,
        stage varchar not null,
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
    columns = [(f, field_type(f)) for f in CANONICAL_FIELDS[kind]]
    columns += list(RAW_EXTRA_COLUMNS.get(kind, {}).items())
    fields = ",\n".join(f"    {name} {type_}" for name, type_ in columns)
    return (
        f"create table if not exists {RAW_TABLES[kind]} (\n{_LINEAGE}{fields},\n"
        "    extra json,\n    loaded_at timestamp not null\n)"
    )


# Columns added after a table was first shipped: a warehouse carried over from an older
# night gets them on its next run (`if not exists` above would not add them).
_ADDED_COLUMNS = [
    ("quarantine", "record_key", "varchar"),
    ("raw_customers", "phone_region", "varchar"),
    # the file's size and modification time when content_hash was taken (file_versions.py)
    ("ingest_log", "file_size", "bigint"),
    ("ingest_log", "file_mtime_ns", "bigint"),
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the Python-written tables that do not exist yet, and add newer columns."""
    for ddl in DDL:
        con.execute(ddl)
    for kind in RAW_TABLES:
        con.execute(raw_table_ddl(kind))
    for table, column, type_ in _ADDED_COLUMNS:
        con.execute(f"alter table {table} add column if not exists {column} {type_}")
