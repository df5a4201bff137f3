"""The suppression list: hashes of people who must never be exported or loaded again.

An erased person cannot be remembered by their details (that would defeat the erasure), yet
tomorrow's CRM export will still contain them. So `forget` records only SHA-256 hashes of their
normalised identifiers in the activation store, and ingest calls `quarantine_erased` on every
freshly mapped batch: rows whose identifiers hash to a suppressed value go to `quarantine` with
rule `erased` and no raw value or record (no PII lands in quarantine), and never reach raw tables.

Hash kinds (all `privacy.hashing.sha256_hex` of a normalised value):

* `email`      trim + lower-case (the ad platforms' rule, see hashing.py)
* `email_key`  the identity matching key (`email_match_key`: +tag dropped, Gmail dots removed,
               a misspelt provider domain read as the provider), so another spelling of the
               same mailbox is caught too
* `phone`      E.164
* `loyalty_id` `normalize_loyalty_id`
* `record`     `<customer source>:<source_record_id>` of each of the person's CRM records, so
               orders, surveys and consents that name the record but carry no contact are caught
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

from ccv.activation.settings import Activation, settings_of
from ccv.activation.store import open_store
from ccv.config import KEY_FIELD, Config, SourceConfig
from ccv.identity.standardize import email_match_key, normalize_loyalty_id, normalize_phone
from ccv.privacy.hashing import normalize_email_for_hash, sha256_hex


def email_hashes(emails: Iterable[str | None]) -> set[tuple[str, str]]:
    """(hash, kind) pairs of emails: the plain normalised form and the matching key."""
    out: set[tuple[str, str]] = set()
    values = [v for v in (normalize_email_for_hash(e) for e in emails) if v]
    if not values:
        return out
    keys = email_match_key(pd.Series(values, dtype=object))
    for value, key in zip(values, keys, strict=True):
        out.add((sha256_hex(value), "email"))
        if isinstance(key, str):
            out.add((sha256_hex(key), "email_key"))
    return out


def phone_hashes(phones: Iterable[str | None], region: str = "GB") -> set[tuple[str, str]]:
    """(hash, kind) pairs of phones, normalised to E.164 first (unparseable ones are skipped)."""
    values = [p for p in phones if isinstance(p, str) and p.strip()]
    if not values:
        return set()
    e164 = normalize_phone(pd.Series(values, dtype=object), region, placeholders=None)
    return {(sha256_hex(v), "phone") for v in e164 if isinstance(v, str)}


def loyalty_hashes(loyalty_ids: Iterable[str | None]) -> set[tuple[str, str]]:
    """(hash, kind) pairs of loyalty ids."""
    values = [v for v in loyalty_ids if isinstance(v, str) and v.strip()]
    if not values:
        return set()
    normalized = normalize_loyalty_id(pd.Series(values, dtype=object))
    return {(sha256_hex(v), "loyalty_id") for v in normalized if isinstance(v, str)}


def record_hashes(records: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """(hash, kind) pairs of CRM records `(source, source_record_id)`."""
    return {(sha256_hex(f"{source}:{record_id}"), "record") for source, record_id in records}


def add_suppression(
    con: duckdb.DuckDBPyConnection,
    hashes: Iterable[tuple[str, str]],
    reason: str,
    request_id: str,
    now: dt.datetime,
) -> int:
    """Insert (hash, kind) pairs not yet suppressed; return how many were new."""
    existing = {(h, k) for h, k in con.execute("select hash, kind from suppression").fetchall()}
    new = sorted(set(hashes) - existing)
    if new:
        con.executemany(
            "insert into suppression values (?, ?, ?, ?, ?)",
            [[h, k, reason, request_id, now] for h, k in new],
        )
    return len(new)


def suppression_hashes(config_or_settings: Config | Activation | Path) -> set[str]:
    """Every suppressed hash (all kinds), read from the activation store; empty without one.

    Call it once per ingest and pass the set to `quarantine_erased` for each file.
    """
    path = (
        config_or_settings
        if isinstance(config_or_settings, Path)
        else settings_of(config_or_settings).store_path
    )
    if not path.exists():
        return set()
    for attempt in range(40):
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.IOException:  # an export or erasure holds the file: wait for it
            if attempt == 39:
                raise
            time.sleep(0.25)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        if "suppression" not in tables:
            return set()
        return {r[0] for r in con.execute("select hash from suppression").fetchall()}
    finally:
        con.close()


def suppress(
    config: Config | Activation,
    email: str | None = None,
    phone: str | None = None,
    reason: str = "do_not_contact",
    now: dt.datetime | None = None,
) -> int:
    """Put an email and/or phone on the suppression list without erasing anything."""
    settings = settings_of(config)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    hashes = email_hashes([email]) | phone_hashes([phone], settings.default_phone_region)
    if not hashes:
        raise ValueError("give a valid email and/or phone to suppress")
    request_id = "P" + now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    con = open_store(settings.store_path)
    try:
        n = add_suppression(con, hashes, reason, request_id, now)
        con.execute(
            "insert into privacy_log values (?, ?, 'suppression', ?, to_json(?), 0, null, null, "
            "null, ?)",
            [
                request_id,
                now,
                "email" if email else "phone",
                sorted(h for h, _ in hashes),
                reason,
            ],
        )
    finally:
        con.close()
    return n


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quarantine_erased(
    con: duckdb.DuckDBPyConnection,
    mapped_table: str,
    source: SourceConfig,
    suppressed: set[str],
    *,
    run_id: str,
    source_file: str,
    now: dt.datetime,
    phone_region: str = "GB",
) -> int:
    """Move rows of a freshly mapped batch that belong to an erased person into quarantine.

    `mapped_table` has `_row` and the canonical fields of `source.kind` (ingest's `_mapped`).
    Matching rows are deleted from it and quarantined with rule `erased`, the matching field's
    name, and no raw value, record or record key (no PII lands in quarantine; without a
    record key a snapshot source simply treats the record as gone). Returns the number of rows
    moved; the caller adds it to the file's quarantined count.
    """
    if not suppressed:
        return 0
    columns = {r[0] for r in con.execute(f"describe {mapped_table}").fetchall()}
    wanted = [c for c in ("email", "phone", "loyalty_id", "customer_record_id") if c in columns]
    key = KEY_FIELD[source.kind]
    if source.kind == "customers":
        wanted.append(key)
    if not wanted:
        return 0
    batch = con.execute(
        f"select _row, {', '.join(_quote(c) for c in dict.fromkeys(wanted))} from {mapped_table}"
    ).df()
    if batch.empty:
        return 0
    hits: dict[int, str] = {}

    def mark(field: str, hashes_by_row: pd.Series) -> None:
        for row, row_hashes in zip(batch["_row"], hashes_by_row, strict=True):
            if int(row) not in hits and row_hashes & suppressed:
                hits[int(row)] = field

    def as_text(series: pd.Series) -> list[str | None]:
        return [None if pd.isna(v) else str(v) for v in series]

    if "email" in batch:
        mark(
            "email", pd.Series([{h for h, _ in email_hashes([v])} for v in as_text(batch["email"])])
        )
    if "phone" in batch:
        mark(
            "phone",
            pd.Series(
                [{h for h, _ in phone_hashes([v], phone_region)} for v in as_text(batch["phone"])]
            ),
        )
    if "loyalty_id" in batch:
        mark(
            "loyalty_id",
            pd.Series([{h for h, _ in loyalty_hashes([v])} for v in as_text(batch["loyalty_id"])]),
        )
    owner = source.name if source.kind == "customers" else source.customer_source
    record_field = key if source.kind == "customers" else "customer_record_id"
    if owner and record_field in batch:
        mark(
            record_field,
            pd.Series(
                [
                    {sha256_hex(f"{owner}:{v}")} if v is not None else set()
                    for v in as_text(batch[record_field])
                ]
            ),
        )
    if not hits:
        return 0
    found = pd.DataFrame({"_row": list(hits), "field": list(hits.values())})
    con.register("_erased_rows", found)
    try:
        con.execute(
            """
            insert into quarantine (run_id, source, source_file, row_number, line_number, field,
                                    rule, raw_value, message, raw_record, quarantined_at,
                                    record_key)
            select ?, ?, ?, _row, null, field, 'erased', null,
                   'record of a person erased on request (matched by hash of ' || field || ')',
                   null, ?, null
            from _erased_rows
            """,
            [run_id, source.name, source_file, now],
        )
        con.execute(f"delete from {mapped_table} where _row in (select _row from _erased_rows)")
    finally:
        con.unregister("_erased_rows")
    return len(hits)
