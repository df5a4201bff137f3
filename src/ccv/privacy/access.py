"""Right of access: one JSON file with everything ccv holds about a person.

Found with the same rules that erasure deletes by (`subject.find_subject` and the per-table
predicates of `erasure`), so what a subject is shown and what an erasure would remove cannot
drift apart. Read-only on the published warehouse; the request is logged in `privacy_log` with
hashes only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import duckdb

from ccv.activation.settings import Activation, settings_of
from ccv.activation.store import open_store
from ccv.config import Config
from ccv.privacy.erasure import _load_subject, _predicate, _quote, _sql_path
from ccv.privacy.hashing import sha256_hex
from ccv.privacy.subject import _tables, find_subject

# Report sections: which tables feed which part of the answer (anything else: `other`).
SECTIONS: dict[str, tuple[str, ...]] = {
    "source_records_raw": (
        "raw_customers",
        "raw_orders",
        "raw_order_lines",
        "raw_survey_responses",
        "raw_consents",
    ),
    "source_records_staged": (
        "stg_customers",
        "stg_orders",
        "stg_order_lines",
        "stg_survey_responses",
    ),
    "golden_record": ("customers",),
    "golden_record_provenance": ("customer_attributes",),
    "orders": ("orders", "order_lines"),
    "survey_responses": ("survey_responses",),
    "consents": ("stg_consents",),
    "segments_and_scores": (
        "customer_360",
        "customer_360_pseudo",
        "rfm_scores",
        "loyalty_segments",
        "customer_value",
        "segment_history",
        "segment_moves",
    ),
    "identity": ("identity_records", "customer_xref", "customer_ids", "identity_events"),
    "rejected_input_rows": ("quarantine",),
    "withheld_input_values": ("withheld_values",),
}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    result = con.execute(sql, params)
    columns = [d[0] for d in result.description]
    return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def subject_access(
    config: Config | Activation,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    out: Path | str | None = None,
    now: dt.datetime | None = None,
    all_matches: bool = False,
) -> Path:
    """Write the subject access report for one person to `out` (JSON); return its path."""
    settings = settings_of(config)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    request_id = "P" + now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    out = Path(out) if out else settings.export_dir / f"subject_access_{request_id}.json"
    db = settings.layout.db_link
    if not db.exists():
        raise FileNotFoundError(f"no published warehouse at {db}")
    report: dict = {
        "request_id": request_id,
        "generated_at": now.isoformat(),
        "identified_by": "email" if email else "phone" if phone else "customer_id",
        "warehouse_version": os.path.basename(os.readlink(settings.layout.current))
        if settings.layout.current.is_symlink()
        else None,
    }
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        subject = find_subject(
            con, email, phone, customer_id, settings.default_phone_region, all_matches
        )
        report["customer_ids"] = sorted(subject.customer_ids)
        report["source_records"] = [
            {"source": s, "source_record_id": r, "record_kind": k}
            for s, r, k in sorted(subject.records)
        ]
        _load_subject(con, subject)
        needles = sorted(subject.needles())
        tables = _tables(con)
        found: dict[str, list[dict]] = {}
        for table, columns in sorted(tables.items()):
            where, params = _predicate(table, columns, needles)
            if where:
                rows = _rows(con, f"select * from {_quote(table)} where {where}", params)
                if rows:
                    found[table] = rows
        snapshots: dict[str, list[dict]] = {}
        marts = settings.layout.marts_link
        if marts.exists():
            for folder in sorted(p for p in marts.iterdir() if p.is_dir()):
                files = sorted(folder.rglob("*.parquet"))
                if not files:
                    continue
                scan = (
                    f"read_parquet({_sql_path(folder / 'snapshot_on=*' / '*.parquet')}, "
                    "hive_partitioning = true, union_by_name = true)"
                )
                columns = {
                    r[0]: r[1] for r in con.execute(f"describe select * from {scan}").fetchall()
                }
                where, params = _predicate(folder.name, columns, needles)
                if where:
                    rows = _rows(con, f"select * from {scan} where {where}", params)
                    if rows:
                        snapshots[folder.name] = rows
    placed = set()
    for section, members in SECTIONS.items():
        report[section] = {t: found[t] for t in members if t in found}
        placed |= set(members)
    report["other"] = {t: rows for t, rows in found.items() if t not in placed}
    report["published_snapshots"] = snapshots

    store = open_store(settings.store_path)
    try:
        report["exports"] = _rows(
            store,
            """
            select l.export_id, l.exported_at, l.channel, l.segment, l.filter, l.triggered_by,
                   l.file_path
            from export_members as m inner join export_log as l using (export_id)
            where m.customer_id in (select unnest(?::varchar[]))
            order by l.exported_at
            """,
            [sorted(subject.customer_ids)],
        )
        given = (email or phone or customer_id or "").strip().lower()
        store.execute(
            "insert into privacy_log values (?, ?, 'subject_access', ?, to_json(?::varchar[]), "
            "?, null, null, null, null)",
            [
                request_id,
                now,
                report["identified_by"],
                [sha256_hex(given)],
                len(subject.customer_ids),
            ],
        )
    finally:
        store.close()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out)
    return out
