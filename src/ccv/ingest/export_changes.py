"""What a snapshot source's new export changed, against the export before it.

A `load = "snapshot"` CRM source re-sends every record every night, and a record whose
delivered row differs in any column — an unmapped one kept in `extra` too — is a new version:
staged again, and kept in the raw history (`snapshots.py`). A column that changes with every
export without saying anything about the record (an export time, a row counter) therefore
makes every record a new version every night, and nothing in the data says why the nights are
slow. So each night that loads a new export records, per source, how many of its records are
new, changed, gone, and changed *only* in unmapped columns — and which of those columns
changed (`snapshot_changes`; the run report shows it) — and warns when at least half the
records the export re-sent changed only there: such a column belongs in the source's
`drop_columns`.

Compared: the latest export (greatest file name, as staging finds it) with the one before, both
kept whole in `raw_customers`, record by record (`crm_version` against `crm_fields`, the same
hash without `extra`: sql/macros/). About 0.25 s at a million customers.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import duckdb

from ccv.ingest.snapshots import EXPORTS
from ccv.warehouse.models import create_macros

log = logging.getLogger(__name__)

SAMPLE = 1000
"""records changed only in unmapped columns whose columns are compared, per source"""


@dataclass(frozen=True)
class ExportChanges:
    """One snapshot source's new export against the one before (a row of `snapshot_changes`)."""

    source: str
    export: str
    previous_export: str | None
    records: int  # in the new export
    new: int  # not in the previous one
    changed: int  # in both, delivered with other values
    changed_unmapped_only: int  # of those, with the same values in every mapped column
    gone: int  # in the previous export, not in the new one
    unmapped_changed: list[str]
    """unmapped columns that differ in at least half of the (sampled) records changed only in
    unmapped columns, the most often changed first"""

    @property
    def resent(self) -> int:
        """Records of the new export that the previous one held too."""
        return self.records - self.new

    @property
    def looks_volatile(self) -> bool:
        """At least half the re-sent records changed only in unmapped columns."""
        return self.changed_unmapped_only > 0 and 2 * self.changed_unmapped_only >= self.resent


COUNTS_SQL = f"""
with exports as (
    {EXPORTS}
),

-- the snapshot sources whose latest export was loaded tonight
latest as (
    select e.source, e.source_file
    from exports as e
    where e.age = 1 and exists (
        select 1 from raw_customers as r
        where r.source = e.source and r.source_file = e.source_file and r.run_id = $run_id)
),

previous as (
    select e.source, e.source_file
    from exports as e
    semi join latest as l on l.source = e.source
    where e.age = 2
),

new_rows as (
    select r.source, r.source_record_id, crm_version(r) as version, crm_fields(r) as fields
    from raw_customers as r
    semi join latest as l on l.source = r.source and l.source_file = r.source_file
),

old_rows as (
    select r.source, r.source_record_id, crm_version(r) as version, crm_fields(r) as fields
    from raw_customers as r
    semi join previous as p on p.source = r.source and p.source_file = r.source_file
),

compared as (
    select
        coalesce(n.source, o.source) as source,
        count(n.source_record_id) as records,
        count(*) filter (where o.source_record_id is null) as new,
        count(*) filter (where n.version <> o.version) as changed,
        count(*) filter (where n.version <> o.version and n.fields = o.fields)
            as changed_unmapped_only,
        count(*) filter (where n.source_record_id is null) as gone
    from new_rows as n
    full join old_rows as o
        on o.source = n.source and o.source_record_id = n.source_record_id
    group by all
),

final as (
    select l.source, l.source_file as export, p.source_file as previous_export,
           coalesce(c.records, 0), coalesce(c.new, 0), coalesce(c.changed, 0),
           coalesce(c.changed_unmapped_only, 0), coalesce(c.gone, 0)
    from latest as l
    left join previous as p using (source)
    left join compared as c using (source)
)

select * from final order by source
"""

# the unmapped columns that differ, over a sample of one source's records changed only there
COLUMNS_SQL = f"""
with exports as (
    {EXPORTS}
),

pairs as (
    select n.extra as new_extra, o.extra as old_extra
    from raw_customers as n
    join raw_customers as o
        on o.source = n.source and o.source_record_id = n.source_record_id
    where n.source = $source and n.source_file = $export and o.source_file = $previous
        and crm_version(n) <> crm_version(o) and crm_fields(n) = crm_fields(o)
    limit {SAMPLE}
),

keyed as (
    select
        unnest(list_distinct(
            coalesce(json_keys(new_extra), []) || coalesce(json_keys(old_extra), [])
        )) as column_name,
        new_extra,
        old_extra
    from pairs
),

-- a JSON pointer (RFC 6901) names any key: `$.` paths choke on quotes in column names
pointed as (
    select column_name, new_extra, old_extra,
        '/' || replace(replace(column_name, '~', '~0'), '/', '~1') as pointer
    from keyed
)

select column_name, count(*) as records
from pointed
where json_extract_string(new_extra, pointer) is distinct from
    json_extract_string(old_extra, pointer)
group by column_name
having 2 * count(*) >= (select count(*) from pairs)
order by records desc, column_name
"""


def record_export_changes(con: duckdb.DuckDBPyConnection, run_id: str) -> list[ExportChanges]:
    """Compare each snapshot source's export loaded tonight with the one before; append the
    counts to `snapshot_changes`, warn about unmapped columns that look like export stamps,
    and return them."""
    create_macros(con)  # crm_version, crm_fields
    rows = con.execute(COUNTS_SQL, {"run_id": run_id}).fetchall()
    found = []
    for source, export, previous, *counts in rows:
        columns: list[str] = []
        if counts[3]:  # changed only in unmapped columns
            columns = [
                name
                for name, _ in con.execute(
                    COLUMNS_SQL, {"source": source, "export": export, "previous": previous}
                ).fetchall()
            ]
        found.append(ExportChanges(source, export, previous, *counts, columns))
    if found:
        con.executemany(
            "insert into snapshot_changes values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, *dataclasses.astuple(c)] for c in found],
        )
    for c in found:
        if c.looks_volatile:
            log.warning(
                "%s: %d of the %d records its export %s sent again changed only in unmapped "
                "columns (%s): each is a new version, staged and kept again. If such a "
                "column changes with every export (an export time, a counter), list it in "
                "the source's drop_columns.",
                c.source,
                c.changed_unmapped_only,
                c.resent,
                c.export,
                ", ".join(c.unmapped_changed) or "no one column in most of them",
            )
    return found
