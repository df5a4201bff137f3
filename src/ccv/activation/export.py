"""Marketing exports: who may be contacted on a channel, written to a file and logged.

`export_segment` selects customers from the *published* `customer_360` (by segment name and/or
a validated filter), then removes, in this fixed order, each customer under the first reason
that applies:

1. `suppressed`       a hash of one of their emails / phones is on the suppression list
                      (erased people, do-not-contact requests)
2. `no_consent`       their latest consent event for the channel is not an opt-in (email, sms,
                      ads need an opt-in; postal needs only the absence of an opt-out when
                      `postal_legitimate_interest` is on)
3. `no_contact_point` nothing valid to send to (email: valid address; sms: E.164 phone; postal:
                      address line and postcode; ads: a valid email or phone)
4. `capped`           already exported on this channel `max_contacts` times in `window_days`

Legal reasons come first so that a report never calls someone "capped" who may not be contacted
at all. The rest are written atomically (temp file + `os.replace`), and the export is logged with
its members in the activation store (see store.py) in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from ccv.activation.filters import FilterRejected, validate_filter
from ccv.activation.settings import Activation, settings_of
from ccv.activation.store import open_store
from ccv.config import Config
from ccv.identity.standardize import normalize_email, normalize_phone
from ccv.ingest.file_versions import file_hash
from ccv.privacy.hashing import hash_email, hash_phone

Channel = Literal["email", "sms", "postal", "ads"]
CHANNELS: tuple[str, ...] = ("email", "sms", "postal", "ads")
FORMATS: tuple[str, ...] = ("csv", "parquet")
REASONS: tuple[str, ...] = ("suppressed", "no_consent", "no_contact_point", "capped")
SEGMENT_COLUMNS: tuple[str, ...] = ("rfm_segment", "loyalty_cell", "loyalty_stage")
# Columns written per channel. Ads files carry hashes only: no clear-text PII, not even the
# internal customer_id (the platform needs nothing to join back to us).
OUTPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "email": ("customer_id", "email", "first_name", "last_name", "segment"),
    "sms": ("customer_id", "phone", "first_name", "segment"),
    "postal": (
        "customer_id",
        "full_name",
        "address_line",
        "city",
        "postcode",
        "country",
        "segment",
    ),
    "ads": ("email_sha256", "phone_sha256"),
}


class ExportError(ValueError):
    """An export that cannot be made as asked (bad channel, unknown segment, no warehouse)."""


@dataclass
class ExportResult:
    """What an export wrote and whom it left out, and why."""

    export_id: str
    channel: str
    segment: str | None
    filter: str | None
    path: Path
    row_count: int
    sha256: str
    candidates: int
    excluded: dict[str, int] = field(default_factory=dict)
    exported_at: dt.datetime | None = None


def _latest_consent(
    con: duckdb.DuckDBPyConnection, channel: str, default_region: str
) -> pd.DataFrame:
    """customer_id → is_opt_in of the latest consent event on `channel` (none: no row).

    Consent events (`stg_consents`) name a CRM record (`customer_source`, `customer_record_id`)
    and/or carry an email, phone or loyalty id; each is mapped to every customer whose source
    records (`identity_records` + `customer_xref`) carry it. The latest event wins; on equal
    timestamps an opt-out wins (the cautious reading); events without a time count as oldest.
    """
    exists = con.execute(
        "select count(*) from duckdb_tables() "
        "where database_name = 'wh' and table_name = 'stg_consents'"
    ).fetchall()[0][0]
    if not exists:
        return pd.DataFrame({"customer_id": [], "is_opt_in": []})
    events = con.execute(
        """
        select consent_key, customer_source, customer_record_id, email, phone, loyalty_id,
               is_opt_in, consented_at
        from wh.stg_consents
        where channel = ?
        """,
        [channel],
    ).df()
    if events.empty:
        return pd.DataFrame({"customer_id": [], "is_opt_in": []})
    events["std_email"] = normalize_email(events["email"], placeholders=None)
    events["std_phone"] = normalize_phone(events["phone"], default_region, placeholders=None)
    con.register("_consent_events", events)
    try:
        return con.execute(
            """
            with consent_events as (
                select * from _consent_events
            ),

            identity_records as (
                select * from wh.identity_records
            ),

            customer_xref as (
                select * from wh.customer_xref
            ),

            record_customers as (
                select r.email, r.phone, r.loyalty_id, x.customer_id
                from identity_records as r
                inner join customer_xref as x
                    on x.source = r.source
                    and x.source_record_id = r.source_record_id
                    and x.record_kind = r.record_kind
            ),

            by_record as (
                select e.consent_key, x.customer_id
                from consent_events as e
                inner join customer_xref as x
                    on x.source = e.customer_source
                    and x.source_record_id = e.customer_record_id
                    and x.record_kind = 'customer'
            ),

            by_email as (
                select e.consent_key, r.customer_id
                from consent_events as e
                inner join record_customers as r on r.email = e.std_email
            ),

            by_phone as (
                select e.consent_key, r.customer_id
                from consent_events as e
                inner join record_customers as r on r.phone = e.std_phone
            ),

            by_loyalty as (
                select e.consent_key, r.customer_id
                from consent_events as e
                inner join record_customers as r on r.loyalty_id = e.loyalty_id
            ),

            mapped as (
                select * from by_record
                union
                select * from by_email
                union
                select * from by_phone
                union
                select * from by_loyalty
            ),

            ranked as (
                select
                    m.customer_id,
                    e.is_opt_in,
                    row_number() over (
                        partition by m.customer_id
                        order by e.consented_at desc nulls last, e.is_opt_in asc, e.consent_key
                    ) as event_rank
                from mapped as m
                inner join consent_events as e on e.consent_key = m.consent_key
                where e.is_opt_in is not null
            ),

            final as (
                select customer_id, is_opt_in from ranked where event_rank = 1
            )

            select * from final
            """
        ).df()
    finally:
        con.unregister("_consent_events")


def _customer_hashes(con: duckdb.DuckDBPyConnection, customers: pd.DataFrame) -> pd.DataFrame:
    """customer_id → SHA-256 of each email and phone known for them (golden + source records)."""
    con.register("_candidates", customers[["customer_id"]])
    try:
        known = con.execute(
            """
            select x.customer_id, r.email, r.phone
            from wh.customer_xref as x
            inner join wh.identity_records as r
                on r.source = x.source
                and r.source_record_id = x.source_record_id
                and r.record_kind = x.record_kind
            where x.customer_id in (select customer_id from _candidates)
            """
        ).df()
    finally:
        con.unregister("_candidates")
    known = pd.concat([known, customers[["customer_id", "email", "phone"]]], ignore_index=True)
    rows = [(c, hash_email(e)) for c, e in zip(known["customer_id"], known["email"], strict=True)]
    rows += [(c, hash_phone(p)) for c, p in zip(known["customer_id"], known["phone"], strict=True)]
    frame = pd.DataFrame(rows, columns=["customer_id", "hash"], dtype=object)
    return frame.dropna().drop_duplicates()


def _text(value: object) -> str | None:
    """A cell as stripped text, None when missing or blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _contact_columns(frame: pd.DataFrame, default_region: str) -> pd.DataFrame:
    """Add `valid_email`, `e164` and `has_address` (what each channel can reach)."""
    out = frame.copy()
    out["valid_email"] = normalize_email(frame["email"])
    out["e164"] = normalize_phone(frame["phone"], default_region)
    address = frame["address_line"].map(_text)
    postcode = frame["postcode"].map(_text)
    out["has_address"] = address.notna() & postcode.notna()
    return out


def _reachable(frame: pd.DataFrame, channel: str) -> pd.Series:
    if channel == "email":
        return frame["valid_email"].notna()
    if channel == "sms":
        return frame["e164"].notna()
    if channel == "postal":
        return frame["has_address"].astype(bool)
    return frame["valid_email"].notna() | frame["e164"].notna()


def _rows_for(frame: pd.DataFrame, channel: str) -> pd.DataFrame:
    """The file's columns for `channel` from the exportable customers."""
    out = pd.DataFrame(index=frame.index)
    if channel == "ads":
        out["email_sha256"] = frame["valid_email"].map(lambda v: hash_email(_text(v)))
        out["phone_sha256"] = frame["e164"].map(lambda v: hash_phone(_text(v)))
    else:
        out["customer_id"] = frame["customer_id"]
        if channel == "email":
            out["email"] = frame["valid_email"]
            out["first_name"] = frame["first_name"]
            out["last_name"] = frame["last_name"]
        elif channel == "sms":
            out["phone"] = frame["e164"]
            out["first_name"] = frame["first_name"]
        else:
            full = frame["full_name"].map(_text)
            parts = (
                frame["first_name"].map(lambda v: _text(v) or "")
                + " "
                + frame["last_name"].map(lambda v: _text(v) or "")
            ).str.strip()
            out["full_name"] = full.where(full.notna(), parts.where(parts != "", None))
            for column in ("address_line", "city", "postcode", "country"):
                out[column] = frame[column]
        out["segment"] = frame["segment"]
    out = out[list(OUTPUT_COLUMNS[channel])]
    sort = ["customer_id"] if channel != "ads" else ["email_sha256", "phone_sha256"]
    return out.sort_values(sort, na_position="last").reset_index(drop=True)


def _write(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, path: Path, fmt: str) -> None:
    """Write `rows` to `path` (a temp name; the caller renames it into place)."""
    con.register("_export_rows", rows)
    try:
        target = str(path).replace("'", "''")
        if fmt == "csv":
            con.execute(f"copy (select * from _export_rows) to '{target}' (header, delimiter ',')")
        else:
            con.execute(
                f"copy (select * from _export_rows) to '{target}' (format parquet, "
                "compression zstd)"
            )
    finally:
        con.unregister("_export_rows")
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def select_candidates(
    con: duckdb.DuckDBPyConnection, segment: str | None, where: str | None
) -> tuple[pd.DataFrame, str | None]:
    """Customers of the attached warehouse (`wh`) in `segment` and matching `where`.

    A segment name is looked up in `rfm_segment`, `loyalty_cell` and `loyalty_stage` (their
    values do not overlap: RFM names are capitalised words, cells end in `_loyalty`, stages are
    single lower-case words). Returns the candidates and the regenerated filter SQL.
    """
    columns = [r[0] for r in con.execute("describe wh.customer_360").fetchall()]
    conditions, params = [], []
    safe_where = None
    if where is not None:
        safe_where = validate_filter(con, where, columns)
        kind = con.execute(
            f"describe select ({safe_where}) as matches from wh.customer_360"
        ).fetchall()[0][1]
        if kind not in ("BOOLEAN", '"NULL"', "NULL"):
            raise FilterRejected(f"the filter is not a boolean expression (it gives {kind})")
        conditions.append(f"({safe_where})")
    if segment is not None:
        known = {
            row[0]
            for column in SEGMENT_COLUMNS
            if column in columns
            for row in con.execute(
                f"select distinct {column} from wh.customer_360 where {column} is not null"
            ).fetchall()
        }
        if segment not in known:
            raise ExportError(
                f"unknown segment {segment!r}; known segments (rfm_segment, loyalty_cell, "
                f"loyalty_stage): {', '.join(sorted(known))}"
            )
        conditions.append(
            "(" + " or ".join(f"{c} = ?" for c in SEGMENT_COLUMNS if c in columns) + ")"
        )
        params += [segment] * sum(c in columns for c in SEGMENT_COLUMNS)
    if not conditions:
        raise ExportError("give a segment, a filter or both (an export of everyone is refused)")
    segment_sql = "?" if segment is not None else "rfm_segment"
    select_params = [segment] if segment is not None else []
    frame = con.execute(
        f"""
        select customer_id, first_name, last_name, full_name, email, phone, address_line, city,
               postcode, country, cast({segment_sql} as varchar) as segment
        from wh.customer_360
        where {" and ".join(conditions)}
        order by customer_id
        """,
        select_params + params,
    ).df()
    return frame, safe_where


def _capped(
    store: duckdb.DuckDBPyConnection, channel: str, now: dt.datetime, settings: Activation
) -> set[str]:
    since = now - dt.timedelta(days=settings.window_days)
    rows = store.execute(
        """
        select customer_id
        from export_members
        where channel = ? and exported_at > ? and exported_at <= ?
        group by customer_id
        having count(*) >= ?
        """,
        [channel, since, now, settings.max_contacts],
    ).fetchall()
    return {r[0] for r in rows}


def classify(
    candidates: pd.DataFrame,
    channel: str,
    consent: pd.DataFrame,
    suppressed: set[str],
    capped: set[str],
    postal_legitimate_interest: bool,
) -> pd.Series:
    """Per candidate, the first exclusion reason in `REASONS` order, or None (exportable)."""
    opt_in = dict(zip(consent["customer_id"], consent["is_opt_in"], strict=True))
    legitimate = channel == "postal" and postal_legitimate_interest

    def consented(customer_id: str) -> bool:
        latest = opt_in.get(customer_id)
        if latest is None:
            return legitimate
        return bool(latest)

    reachable = _reachable(candidates, channel)
    reasons = []
    for customer_id, can_reach in zip(candidates["customer_id"], reachable, strict=True):
        if customer_id in suppressed:
            reasons.append("suppressed")
        elif not consented(customer_id):
            reasons.append("no_consent")
        elif not can_reach:
            reasons.append("no_contact_point")
        elif customer_id in capped:
            reasons.append("capped")
        else:
            reasons.append(None)
    return pd.Series(reasons, index=candidates.index, dtype=object)


def export_segment(
    config_or_settings: Config | Activation,
    segment: str | None = None,
    where: str | None = None,
    channel: str = "email",
    fmt: str = "csv",
    out: Path | str | None = None,
    triggered_by: str = "cli",
    now: dt.datetime | None = None,
) -> ExportResult:
    """Export the contactable customers of a segment / filter for `channel`; log it.

    Reads the published warehouse read-only (a nightly run may publish meanwhile; the export
    keeps the version it opened) and writes only the activation store and the export file.
    """
    settings = settings_of(config_or_settings)
    if channel not in CHANNELS:
        raise ExportError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    db = settings.layout.db_link
    if not db.exists():
        raise ExportError(f"no published warehouse at {db}: run `ccv run` first")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    export_id = "E" + now.strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    path = Path(out) if out else settings.export_dir / f"{export_id}_{channel}.{fmt}"
    path = path.absolute()

    store = open_store(settings.store_path)
    try:
        store.execute(
            f"attach '{str(db.resolve()).replace(chr(39), chr(39) * 2)}' as wh (read_only)"
        )
        candidates, safe_where = select_candidates(store, segment, where)
        candidates = _contact_columns(candidates, settings.default_phone_region)
        consent = _latest_consent(store, channel, settings.default_phone_region)
        hashes = _customer_hashes(store, candidates)
        suppressed_hashes = {r[0] for r in store.execute("select hash from suppression").fetchall()}
        suppressed = set(hashes.loc[hashes["hash"].isin(suppressed_hashes), "customer_id"])
        capped = _capped(store, channel, now, settings)
        reasons = classify(
            candidates, channel, consent, suppressed, capped, settings.postal_legitimate_interest
        )
        store.execute("detach wh")
        chosen = candidates[reasons.isna()]
        rows = _rows_for(chosen, channel)
        excluded = {reason: int((reasons == reason).sum()) for reason in REASONS}

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{export_id}.tmp")
        _write(store, rows, tmp, fmt)
        checksum = file_hash(tmp)
        store.execute("begin")
        try:
            store.execute(
                "insert into export_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    export_id,
                    now,
                    triggered_by,
                    segment,
                    safe_where,
                    channel,
                    fmt,
                    len(rows),
                    str(path),
                    checksum,
                    json.dumps(excluded),
                ],
            )
            members = pd.DataFrame({"customer_id": chosen["customer_id"].astype(object)})
            store.register("_members", members)
            store.execute(
                "insert into export_members select customer_id, ?, ?, ? from _members",
                [export_id, channel, now],
            )
            store.unregister("_members")
            os.replace(tmp, path)
            store.execute("commit")
        except BaseException:
            store.execute("rollback")
            tmp.unlink(missing_ok=True)
            raise
    finally:
        store.close()
    return ExportResult(
        export_id=export_id,
        channel=channel,
        segment=segment,
        filter=safe_where,
        path=path,
        row_count=len(rows),
        sha256=checksum,
        candidates=len(candidates),
        excluded=excluded,
        exported_at=now,
    )
