"""The activation store: a DuckDB file of its own, never rewritten by the nightly run.

Tables (no clear-text PII in any of them; customers appear only by `customer_id` or by hash):

* `export_log`     one row per export: who, what, how many, which file and its SHA-256
* `export_members` one row per customer per export: the contact-pressure cap counts these
* `suppression`    SHA-256 hashes of normalised contact points that must never be exported or
                   loaded again (erasure requests, do-not-contact requests)
* `privacy_log`    one row per privacy request: kind, rows removed per table, hashes only

DuckDB lets one process write a file at a time, so two exports cannot both pass the cap check
and then both insert: the second waits for (or fails on) the file lock.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

DDL = [
    """
    create table if not exists export_log (
        export_id varchar primary key,
        exported_at timestamp not null,
        triggered_by varchar not null,
        segment varchar,
        filter varchar,
        channel varchar not null,
        format varchar not null,
        row_count bigint not null,
        file_path varchar not null,
        file_sha256 varchar not null,
        excluded json not null
    )
    """,
    """
    create table if not exists export_members (
        customer_id varchar not null,
        export_id varchar not null,
        channel varchar not null,
        exported_at timestamp not null
    )
    """,
    """
    create table if not exists suppression (
        hash varchar not null,
        kind varchar not null,        -- email | email_key | phone | loyalty_id | record
        reason varchar not null,      -- erased | do_not_contact
        request_id varchar not null,
        suppressed_at timestamp not null
    )
    """,
    """
    create table if not exists privacy_log (
        request_id varchar primary key,
        requested_at timestamp not null,
        request_kind varchar not null,   -- erasure | subject_access | suppression
        identified_by varchar not null,  -- email | phone | customer_id
        subject_hashes json not null,    -- SHA-256 of the identifiers, never the values
        customers bigint not null,
        rows_removed json,               -- table -> rows removed (erasure)
        published_version varchar,       -- the version published without the person
        versions_removed json,
        note varchar
    )
    """,
]


def ensure_store(con: duckdb.DuckDBPyConnection) -> None:
    """Create the store's tables if they do not exist yet."""
    for ddl in DDL:
        con.execute(ddl)


def open_store(path: Path, retries: int = 20, wait_seconds: float = 0.25):
    """Open the store read-write (creating it), waiting briefly if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries):
        try:
            con = duckdb.connect(str(path))
            break
        except duckdb.IOException:
            if attempt == retries - 1:
                raise
            time.sleep(wait_seconds)
    con.execute("set TimeZone = 'UTC'")
    ensure_store(con)
    return con
