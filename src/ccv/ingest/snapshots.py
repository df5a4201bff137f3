"""Keep a snapshot source's raw history bounded: superseded versions of old exports are pruned.

A `load = "snapshot"` CRM source delivers its whole export every night, and every export used
to stay in `raw_customers`: at a million customers ~700k rows a night, so that after a year
staging would rank some 250M rows every night and the warehouse file (copied by every run)
would have grown by tens of gigabytes for versions nobody reads. `stg_customers` only ever
uses, per record, its best version (newest `updated_at`, then latest load, file, row), that
version's first delivery (its row names the delivery since which the record reads as it does:
`sql/macros/crm_version.sql` tells versions apart), its last delivery if it left the exports
(`deleted_at` is when the export after it was loaded), and the source's latest file (to mark
records missing from it as deleted).

So after a night's files are loaded, rows of a snapshot source's *old* files — all but the last
two in natural order (`sql/macros/file_ranks.sql`), the order in which `stg_customers` finds the
latest export — are pruned, except what staging can still reach. What stays:

* the latest export whole: staging's choice and its deleted marks are as before;
* the previous export whole: if the latest file is later replaced by a broken version and
  rejected (its rows go), the night falls back to the previous export, as it would have
  without pruning;
* per record, among the older exports: its best row, unless the previous export sends its
  version again (it outranks the row); the first delivery of each of its versions (any
  version may win again: a CRM can revert a record, or send it again after a gap); and,
  unless the previous export holds the record, its last delivery (a record missing from the
  latest export is marked deleted as of the export after its last delivery). Why the previous
  export and not the latest: the latest may yet be rejected, and the previous one is then
  what there is after the old ones.

So the old exports hold about one row per version a record ever had — what a delta source
holds — and a record re-sent unchanged night after night keeps one row there (its first
delivery), as many as were kept before first deliveries mattered.

Every row pruned is one that no choice of `stg_customers` can reach, unless an old export (not
one of the two latest) is itself re-delivered with different content: its rows are then
replaced, and the versions pruned from it earlier do not come back. Delta sources are left as
they are (they grow by changed records only). `ingest_log` keeps every file's counts.

A value withheld from a pruned row (`withheld_values`, see `withheld.py`) goes with it: it
explains a NULL of a row that no longer exists.

Quarantined rows of old exports are pruned once a later export delivered the same record again
(`prune_superseded_quarantine`): the same bad rows otherwise came back every night (at a
million customers ~6.6k a night: duplicated account ids, accounts without an id), so that the
quarantine a data steward reads held each fault once per night it was re-sent. What stays:

* every quarantined row of the last two exports (the faults as the source sends them now);
* of older exports, a record's quarantined rows until a later export holds the record again,
  loaded or quarantined: a fault fixed at the source is gone with the version that had it
  (as its raw row would be), one still sent is kept from its latest export, and the last
  delivery of a record that left the exports stays;
* a row without a record key (the id itself missing or unreadable) until a later export
  quarantines the same row again — same field, rule, value and raw record.

`ingest_log` keeps every file's quarantined count, so a night's accounting (read = loaded +
quarantined) stays readable after its rows are pruned.
"""

from __future__ import annotations

import duckdb

from ccv.warehouse.models import create_macros

# exports of a snapshot source kept whole (the latest, and the previous one to fall back to)
KEPT_EXPORTS = 2

# a snapshot source's exports (its files in raw_customers) with their `file_rank` and `age`: 1
# for the latest (the last in natural order, as `sql/staging/stg_customers.sql` finds it), 2 for
# the one before, ... (needs the macros: `create_macros`)
EXPORTS = """
    select source, source_file, file_rank,
        row_number() over (partition by source order by file_rank desc) as age
    from (
        select distinct r.source, r.source_file
        from raw_customers as r
        semi join ingest_sources as s on s.source = r.source and s.load = 'snapshot'
    )
    inner join file_ranks() using (source, source_file)
"""

# the order in which `sql/staging/stg_customers.sql` picks a record's version (best first);
# `file_rank`: the delivering file's (`sql/macros/file_ranks.sql`)
VERSION_ORDER = "updated_at desc nulls last, loaded_at desc, file_rank desc, row_number desc"
# the same order as one value whose greatest is the best (`arg_max`)
BEST = (
    "(coalesce(updated_at, '-infinity'::timestamp), updated_at is not null, loaded_at, "
    "file_rank, row_number)"
)


def prune_superseded_snapshot_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the rows of snapshot sources' old exports that staging can no longer reach (see
    the module docstring); return how many were deleted."""
    create_macros(con)  # crm_version: what a row says, without its lineage
    ((pruned,),) = con.execute(
        f"""
        delete from raw_customers where rowid in (
            with exports as (
                {EXPORTS}
            ),

            old_rows as (
                select r.rowid as row_id, r.source, r.source_record_id,
                    crm_version(r) as version, r.updated_at, r.loaded_at, e.file_rank,
                    r.row_number
                from raw_customers as r
                inner join exports as e
                    on e.source = r.source and e.source_file = r.source_file
                    and e.age > {KEPT_EXPORTS}
            ),

            -- what the previous export (the oldest kept whole) delivers: the latest export
            -- may yet be rejected, the previous one then is all there is after the old ones
            previous as (
                select r.source, r.source_record_id, crm_version(r) as version,
                    max(r.loaded_at) as loaded_at
                from raw_customers as r
                semi join exports as e
                    on e.source = r.source and e.source_file = r.source_file
                    and e.age = {KEPT_EXPORTS}
                group by all
            ),

            -- per version of a record among the old rows, its first delivery
            firsts as (
                select arg_min(row_id, (loaded_at, file_rank, row_number)) as row_id
                from old_rows
                group by source, source_record_id, version
            ),

            -- per record among the old rows: its best row (staging's order: newest update,
            -- missing last, then latest load, file, row) and its last delivery (by file)
            per_record as (
                select
                    source,
                    source_record_id,
                    arg_max(row_id, {BEST}) as best_id,
                    arg_max(version, {BEST}) as best_version,
                    arg_max(loaded_at, {BEST}) as best_loaded_at,
                    arg_max(row_id, (file_rank, row_number)) as last_id
                from old_rows
                group by source, source_record_id
            ),

            needed as (
                select row_id from firsts
                union all
                -- unless a later delivery of the same version (the previous export is the
                -- later file) outranks it
                select p.best_id
                from per_record as p
                anti join previous as k
                    on k.source = p.source and k.source_record_id = p.source_record_id
                    and k.version = p.best_version and k.loaded_at >= p.best_loaded_at
                union all
                select p.last_id
                from per_record as p
                anti join previous as k
                    on k.source = p.source and k.source_record_id = p.source_record_id
            ),

            final as (
                select row_id from old_rows anti join needed using (row_id)
            )

            select row_id from final
        )
        """
    ).fetchall()
    if pruned:
        con.execute(
            """
            delete from withheld_values as w
            where w.source in (select source from ingest_sources where load = 'snapshot')
            and not exists (
                select 1 from raw_customers as r
                where r.source = w.source and r.source_file = w.source_file
                    and r.row_number = w.row_number
            )
            """
        )
    return pruned


def prune_superseded_quarantine(con: duckdb.DuckDBPyConnection) -> int:
    """Delete the quarantined rows of snapshot sources' old exports that a later export
    superseded (see the module docstring); return how many were deleted."""
    create_macros(con)  # file_ranks: the order of a source's files
    ((pruned,),) = con.execute(
        f"""
        delete from quarantine where rowid in (
            -- the oldest export kept whole: files before it (in natural order) are old
            with oldest_kept as (
                select source, file_rank from ({EXPORTS}) where age = {KEPT_EXPORTS}
            ),

            files as (
                select f.* from file_ranks() as f semi join oldest_kept using (source)
            ),

            ranked as (
                select q.rowid as row_id, q.*, f.file_rank
                from quarantine as q
                inner join files as f using (source, source_file)
            ),

            old_rows as (
                select q.row_id, q.source, q.file_rank, q.record_key, q.field,
                    q.rule, q.raw_value, cast(q.raw_record as varchar) as raw_record
                from ranked as q
                inner join oldest_kept as k
                    on k.source = q.source and q.file_rank < k.file_rank
            ),

            delivered_later as (
                select o.row_id
                from old_rows as o
                semi join (
                    select r.source, r.source_record_id, f.file_rank
                    from raw_customers as r
                    inner join files as f using (source, source_file)
                ) as r
                    on r.source = o.source and r.source_record_id = o.record_key
                    and r.file_rank > o.file_rank
                union
                select o.row_id
                from old_rows as o
                semi join ranked as q
                    on q.source = o.source and q.record_key = o.record_key
                    and q.file_rank > o.file_rank
            ),

            quarantined_again as (
                select o.row_id
                from old_rows as o
                semi join ranked as q
                    on q.source = o.source and q.file_rank > o.file_rank
                    and q.record_key is null and q.rule = o.rule
                    and q.field is not distinct from o.field
                    and q.raw_value is not distinct from o.raw_value
                    and cast(q.raw_record as varchar) is not distinct from o.raw_record
                where o.record_key is null
            ),

            final as (
                select row_id from delivered_later
                union all
                select row_id from quarantined_again
            )

            select row_id from final
        )
        """
    ).fetchall()
    return pruned
