"""Right to erasure: remove a person from the warehouse, every kept version and future loads.

Why a new version: the warehouse keeps earlier versions for rollback, and a DuckDB file keeps
deleted rows' bytes in free blocks until they are overwritten. So `forget`, holding the
warehouse lock (no nightly run can publish meanwhile):

1. first, in the activation store: adds SHA-256 hashes of the person's emails, phones, loyalty
   ids and CRM record keys to `suppression` (so `quarantine_erased` keeps them out of future
   loads and exports refuse them), removes them from `export_members` and redacts export
   filters that named them — first, so that if anything below fails they are at least
   suppressed and `forget` can be run again;
2. copies the published DuckDB file into a work file and deletes the person from every table
   there (by customer id, by source record, by contact point, and a sweep of free-text columns
   such as `quarantine.raw_record` for their email / phone / loyalty id spellings);
3. copies the cleaned database with `COPY FROM DATABASE` into a *fresh* file, so no deleted
   bytes linger, and rebuilds `customer_360_pseudo` and the `<mart>_history` views;
4. rewrites every Parquet snapshot without the person (nothing is hard-linked from old versions);
5. publishes that version (`versions.publish`) and deletes every other version folder:
   **rollback to before an erasure is impossible by design**;
6. logs the request in `privacy_log` (hashes and row counts only) and rewrites the activation
   store into a fresh file for the same free-block reason.

Export files already sent cannot be recalled; `ForgetResult.exports_affected` lists the exports
that included the person so that the recipients can be told. The local copies of those files
that still exist are rewritten without the person's rows (`export_log.file_sha256` keeps the
checksum of the file as it was sent; `scrubbed` in the result lists the rewritten copies).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ccv.activation.settings import Activation, settings_of
from ccv.activation.store import open_store
from ccv.config import Config
from ccv.privacy.hashing import hash_email, hash_phone, sha256_hex
from ccv.privacy.pseudonym import UNKEYED, pseudo_id, pseudonym_key
from ccv.privacy.subject import Subject, _tables, find_subject
from ccv.privacy.suppression import (
    add_suppression,
    email_hashes,
    loyalty_hashes,
    phone_hashes,
    record_hashes,
)
from ccv.warehouse import versions
from ccv.warehouse.lock import WarehouseLock
from ccv.warehouse.models import SQL_DIR, forget_incremental_state

_TEXT_TYPES = ("VARCHAR", "JSON")
PSEUDO_MODEL = SQL_DIR / "marts" / "customer_360_pseudo.sql"


@dataclass
class ForgetResult:
    """What an erasure removed (counts only: the log of an erasure holds no PII)."""

    request_id: str
    customers: int
    rows_removed: dict[str, int] = field(default_factory=dict)
    parquet_rows_removed: dict[str, int] = field(default_factory=dict)
    published_version: str | None = None
    versions_removed: list[str] = field(default_factory=list)
    suppressed_hashes: int = 0
    export_members_removed: int = 0
    exports_affected: list[dict] = field(default_factory=list)
    scrubbed: list[str] = field(default_factory=list)


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _load_subject(con: duckdb.DuckDBPyConnection, subject: Subject) -> None:
    """Temp tables the delete predicates read (temp: never copied into the new file)."""
    sets = {
        "_erase_ids": subject.customer_ids,
        "_erase_keys": subject.keys(),
        "_erase_customer_keys": subject.keys("customer"),
        "_erase_order_keys": subject.keys("order"),
        "_erase_survey_keys": subject.keys("survey"),
        "_erase_emails": subject.emails,
        "_erase_phones": subject.phones,
        "_erase_phone_tails": subject.phone_tails(),
        "_erase_loyalty": {v.strip() for v in subject.loyalty_ids},
    }
    for name, values in sets.items():
        con.execute(
            f"create or replace temp table {name} as select unnest(?::varchar[]) as v",
            [sorted(values)],
        )
    if "ingest_sources" not in _tables(con):  # older warehouses: raw rows name no owner
        con.execute(
            "create or replace temp table ingest_sources as "
            "select null::varchar as source, null::varchar as customer_source limit 0"
        )


def _predicate(table: str, columns: dict[str, str], needles: list[str]) -> tuple[str, list]:
    """The WHERE clause matching the person's rows in one table (empty: nothing can match)."""
    parts: list[str] = []
    params: list = []
    has = columns.__contains__
    for column in ("customer_id", "merged_into", "other_customer_id"):
        if has(column):
            parts.append(f"{column} in (select v from _erase_ids)")
    if has("source") and has("source_record_id"):
        parts.append("source || ':' || source_record_id in (select v from _erase_keys)")
    if has("source") and has("record_key"):  # quarantine, withheld_values: the key as read
        parts.append("source || ':' || record_key in (select v from _erase_keys)")
    if has("source") and has("order_id"):
        parts.append("source || ':' || order_id in (select v from _erase_order_keys)")
        if has("order_source"):
            parts.append("order_source || ':' || order_id in (select v from _erase_order_keys)")
    if has("source") and has("response_id"):
        parts.append("source || ':' || response_id in (select v from _erase_survey_keys)")
    if has("order_key"):
        parts.append("order_key in (select v from _erase_order_keys)")
    if has("response_key"):
        parts.append("response_key in (select v from _erase_survey_keys)")
    if has("customer_record_id"):
        if has("customer_source"):
            owner = "customer_source"
        else:  # raw tables: the source's customer_source from ingest_sources
            owner = (
                "(select s.customer_source from ingest_sources as s "
                f"where s.source = {_quote(table)}.source)"
            )
        parts.append(
            f"{owner} || ':' || customer_record_id in (select v from _erase_customer_keys)"
        )
    if has("email"):
        parts.append("lower(trim(email)) in (select v from _erase_emails)")
    if has("phone"):
        parts.append(
            "(phone in (select v from _erase_phones) or "
            "right(regexp_replace(phone, '[^0-9]', '', 'g'), 10) in "
            "(select v from _erase_phone_tails))"
        )
    if has("loyalty_id"):
        parts.append("trim(loyalty_id) in (select v from _erase_loyalty)")
    for column, type_ in columns.items():
        if type_.upper() in _TEXT_TYPES and needles:
            sweep = " or ".join(f"contains(lower({_quote(column)}::varchar), ?)" for _ in needles)
            parts.append(f"({sweep})")
            params += needles
    return " or ".join(f"coalesce({p}, false)" for p in parts), params


def erase_in_database(con: duckdb.DuckDBPyConnection, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every base table of `con`'s database; rows per table."""
    _load_subject(con, subject)
    needles = sorted(subject.needles())
    tables = _tables(con)
    removed: dict[str, int] = {}
    for table, columns in tables.items():
        where, params = _predicate(table, columns, needles)
        if not where:
            continue
        n = con.execute(f"delete from {_quote(table)} where {where}", params).fetchall()[0][0]
        if n:
            removed[table] = int(n)
    forget_incremental_state(con)  # rows went by person, not by file: rebuild staging next
    # the term counts frozen with the match parameters may count the person's values (as
    # hashes): the next resolve counts the records again (`identity.term_counts`)
    con.execute("drop table if exists match_tf")
    return removed


def _rebuild_pseudo(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Rebuild customer_360_pseudo from the cleaned customer_360 (if the warehouse has both)."""
    tables = _tables(con)
    if "customer_360_pseudo" not in tables or "customer_360" not in tables:
        return
    con.execute("set variable pseudonym_key = ?", [key])
    body = PSEUDO_MODEL.read_text(encoding="utf-8").strip().rstrip(";")
    con.execute(f"create or replace table customer_360_pseudo as\n{body}\n")


def _fresh_copy(work: Path, target: Path) -> None:
    """Copy every object of `work` into a new file `target` (no free blocks carried over)."""
    target.unlink(missing_ok=True)
    with duckdb.connect(str(target)) as con:
        con.execute(f"attach {_sql_path(work)} as erasure_work (read_only)")
        name = con.execute("select current_database()").fetchall()[0][0]
        con.execute(f"copy from database erasure_work to {_quote(name)}")
        con.execute("detach erasure_work")
        con.execute("checkpoint")


def _rewrite_parquet(
    source_marts: Path, target_marts: Path, subject: Subject, pseudo_ids: set[str]
) -> dict[str, int]:
    """Rewrite every Parquet file of `source_marts` into `target_marts` without the person."""
    removed: dict[str, int] = {}
    needles = sorted(subject.needles())
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        _load_subject(con, subject)
        con.execute(
            "create temp table _erase_pseudo as select unnest(?::varchar[]) as v",
            [sorted(pseudo_ids)],
        )
        for file in sorted(source_marts.rglob("*.parquet")):
            relative = file.relative_to(source_marts)
            target = target_marts / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            scan = f"read_parquet({_sql_path(file)}, hive_partitioning = false)"
            columns = {r[0]: r[1] for r in con.execute(f"describe select * from {scan}").fetchall()}
            where, params = _predicate("parquet", columns, needles)
            if "pseudo_id" in columns:
                where = " or ".join(
                    p
                    for p in (where, "coalesce(pseudo_id in (select v from _erase_pseudo), false)")
                    if p
                )
            where = where or "false"
            total = con.execute(f"select count(*) from {scan}").fetchall()[0][0]
            tmp = target.with_name(f".{target.name}.tmp")
            con.execute(
                f"copy (select * from {scan} where not ({where})) to {_sql_path(tmp)} "
                "(format parquet, compression zstd)",
                params,
            )
            counted = f"select count(*) from read_parquet({_sql_path(tmp)})"
            kept = con.execute(counted).fetchall()[0][0]
            os.replace(tmp, target)
            if total - kept:
                key = str(relative.parts[0])
                removed[key] = removed.get(key, 0) + int(total - kept)
    return removed


def _compact_store(path: Path) -> None:
    """Rewrite the activation store into a fresh file (deleted rows leave no bytes behind)."""
    tmp = path.with_name(f".{path.name}.compact")
    tmp.unlink(missing_ok=True)
    _fresh_copy(path, tmp)
    os.replace(tmp, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def _scrub_export_files(subject: Subject, exports: list[dict], region: str) -> list[str]:
    """Rewrite the local copies of earlier exports without the person's rows."""
    email_hashes_ = {hash_email(e) for e in subject.emails}
    phone_hashes_ = {hash_phone(p) for p in subject.phones}
    scrubbed = []
    with duckdb.connect() as con:
        for export in exports:
            path = Path(export["file_path"])
            if not path.is_file():
                continue
            parquet = path.suffix == ".parquet"
            scan = (
                f"read_parquet({_sql_path(path)})"
                if parquet
                else f"read_csv({_sql_path(path)}, all_varchar = true, header = true)"
            )
            columns = {r[0] for r in con.execute(f"describe select * from {scan}").fetchall()}
            tests = []
            if "customer_id" in columns:
                tests.append("customer_id in (select unnest(?::varchar[]))")
            if "email_sha256" in columns:
                tests.append("email_sha256 in (select unnest(?::varchar[]))")
            if "phone_sha256" in columns:
                tests.append("phone_sha256 in (select unnest(?::varchar[]))")
            params = []
            if "customer_id" in columns:
                params.append(sorted(subject.customer_ids))
            if "email_sha256" in columns:
                params.append(sorted(h for h in email_hashes_ if h))
            if "phone_sha256" in columns:
                params.append(sorted(h for h in phone_hashes_ if h))
            if not tests:
                continue
            where = " or ".join(f"coalesce({t}, false)" for t in tests)
            tmp = path.with_name(f".{path.name}.scrub")
            options = "format parquet, compression zstd" if parquet else "header, delimiter ','"
            con.execute(
                f"copy (select * from {scan} where not ({where})) to {_sql_path(tmp)} ({options})",
                params,
            )
            os.replace(tmp, path)
            scrubbed.append(str(path))
    return scrubbed


def _suppress_first(
    settings: Activation, subject: Subject, request_id: str, now: dt.datetime, result: ForgetResult
) -> None:
    """Activation store, *before* the warehouse is touched: suppress, unlist, redact, scrub.

    Done first so that a failure later (a full disk while rewriting the warehouse) leaves the
    person at least suppressed — excluded from exports and future loads — and `forget` can
    simply be run again.
    """
    store = open_store(settings.store_path)
    try:
        ids = sorted(subject.customer_ids)
        result.exports_affected = [
            {"export_id": e, "channel": c, "file_path": p, "exported_at": str(t)}
            for e, c, p, t in store.execute(
                """
                select distinct l.export_id, l.channel, l.file_path, l.exported_at
                from export_members as m inner join export_log as l using (export_id)
                where m.customer_id in (select unnest(?::varchar[]))
                order by 1
                """,
                [ids],
            ).fetchall()
        ]
        hashes = (
            email_hashes(subject.emails)
            | phone_hashes(subject.phones, settings.default_phone_region)
            | loyalty_hashes(subject.loyalty_ids)
            | record_hashes((s, r) for s, r, k in subject.records if k == "customer")
        )
        store.execute("begin")
        result.suppressed_hashes = add_suppression(store, hashes, "erased", request_id, now)
        result.export_members_removed = int(
            store.execute(
                "delete from export_members where customer_id in (select unnest(?::varchar[]))",
                [ids],
            ).fetchall()[0][0]
        )
        for needle in sorted(subject.needles()):
            store.execute(
                "update export_log set filter = '[redacted: privacy request ' || ? || ']' "
                "where contains(lower(filter), ?)",
                [request_id, needle],
            )
        store.execute("commit")
    finally:
        store.close()
    result.scrubbed = _scrub_export_files(
        subject, result.exports_affected, settings.default_phone_region
    )


def _log_and_compact(
    settings: Activation,
    request_id: str,
    identified_by: str,
    identifier_hashes: list[str],
    now: dt.datetime,
    result: ForgetResult,
) -> None:
    """Log the request (hashes and counts only), then rewrite the store into a fresh file."""
    store = open_store(settings.store_path)
    try:
        store.execute(
            "insert into privacy_log values (?, ?, 'erasure', ?, to_json(?::varchar[]), ?, ?, ?, "
            "to_json(?::varchar[]), ?)",
            [
                request_id,
                now,
                identified_by,
                identifier_hashes,
                result.customers,
                json.dumps(
                    {
                        **result.rows_removed,
                        **{f"parquet:{k}": v for k, v in result.parquet_rows_removed.items()},
                        "activation:export_members": result.export_members_removed,
                    }
                ),
                result.published_version,
                result.versions_removed,
                f"{len(result.exports_affected)} earlier export(s) included the person",
            ],
        )
    finally:
        store.close()
    _compact_store(settings.store_path)


def forget(
    config: Config | Activation,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    now: dt.datetime | None = None,
    all_matches: bool = False,
) -> ForgetResult:
    """Erase one person (named by exactly one of email, phone, customer_id) everywhere.

    An email or phone that several customers hold raises `AmbiguousSubject` (nothing is
    changed) unless `all_matches`: erase them one at a time by customer_id instead.
    """
    settings = settings_of(config)
    layout = settings.layout
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    request_id = "P" + now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    identified_by = "email" if email else "phone" if phone else "customer_id"
    given = email or phone or customer_id or ""
    identifier_hashes = [sha256_hex(given.strip().lower())]
    key = pseudonym_key(settings.pseudonym_key_path)

    with WarehouseLock(layout.lock_path, f"erasure-{request_id}"):
        current = versions.current_run_id(layout)
        if current is None:  # nothing published: only keep them out of future loads
            with duckdb.connect() as con:
                subject = find_subject(
                    con, email, phone, customer_id, settings.default_phone_region, all_matches
                )
        else:
            with duckdb.connect(str(layout.db(current)), read_only=True) as con:
                subject = find_subject(
                    con, email, phone, customer_id, settings.default_phone_region, all_matches
                )
        result = ForgetResult(request_id, len(subject.customer_ids))
        _suppress_first(settings, subject, request_id, now, result)
        if current is not None:
            _rewrite_warehouse(layout, current, subject, key, result)
        _log_and_compact(settings, request_id, identified_by, identifier_hashes, now, result)
    return result


def _rewrite_warehouse(
    layout: versions.Layout, current: str, subject: Subject, key: str, result: ForgetResult
) -> None:
    """Publish a fresh version without the person; delete every other version."""
    # same shape as pipeline.new_run_id: sortable, so the next nightly's id sorts after it
    run_id = dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    folder = layout.version(run_id)
    (folder / "marts").mkdir(parents=True)
    work = folder / ".erasure-work.duckdb"
    try:
        shutil.copyfile(layout.db(current), work)
        with duckdb.connect(str(work)) as con:
            con.execute("set TimeZone = 'UTC'")
            result.rows_removed = erase_in_database(con, subject)
            _rebuild_pseudo(con, key)
            con.execute("checkpoint")
        _fresh_copy(work, layout.db(run_id))
        work.unlink()
        Path(str(work) + ".wal").unlink(missing_ok=True)
        pseudo = {pseudo_id(k, c) for k in (key, UNKEYED) for c in subject.customer_ids}
        result.parquet_rows_removed = _rewrite_parquet(
            layout.marts(current), layout.marts(run_id), subject, pseudo
        )
        with duckdb.connect(str(layout.db(run_id))) as con:
            versions.history_views(con, layout.marts(run_id))
            con.execute("checkpoint")
        versions.publish(layout, run_id)
    except BaseException:
        versions.discard(layout, run_id)
        raise
    result.published_version = run_id
    for old in versions.published_versions(layout):
        if old != run_id:
            shutil.rmtree(layout.version(old))
            result.versions_removed.append(old)
    versions.prune(layout)
