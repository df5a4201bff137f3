"""How an input file is named in the warehouse, and what happens when a file moves.

Every loaded row, quarantined row and `ingest_log` entry names the file it came from
(`source_file`), and that name is how a night knows a file was loaded before: same name and same
content hash means "unchanged, skip it". So the name must not change when nothing about the data
did:

- A file inside the project folder (the config file's folder) is named by its path relative to
  that folder (``data/drops/orders_7.csv``, POSIX separators): moving or re-mounting the whole
  project, or running it from a fresh clone at another path, keeps every name.
- A file outside the project is named by its absolute path. When it moves (the data mount is
  renamed, a drop is moved to another folder that the source's glob now matches), the new name
  is new to the warehouse, but its content hash is not: a new name whose content is exactly an
  earlier file's whose recorded path no longer exists is that file, *moved*. Its rows are kept
  and renamed in every table that records them, nothing is loaded twice, and the move is logged
  (status ``moved``).

Warehouses from before this rule named every file by its absolute path; the first ingest renames
those under the project folder to their relative names (`relocate_to_project`), so the upgrade
loads nothing again.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path, PurePosixPath

import duckdb


def recorded_name(path: Path, base_dir: Path) -> str:
    """The name `path` is recorded under: relative to `base_dir` (POSIX) if inside it."""
    path = Path(os.path.normpath(path))
    if path.is_relative_to(base_dir):
        return PurePosixPath(*path.relative_to(base_dir).parts).as_posix()
    return str(path)


def path_of(name: str, base_dir: Path) -> Path:
    """The file a recorded name points at (relative names are under `base_dir`)."""
    return base_dir / name if not os.path.isabs(name) else Path(name)


def file_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The warehouse's tables that name files: those with ``source`` and ``source_file``
    columns (raw tables, quarantine, ingest_log, and the staged tables that keep lineage)."""
    rows = con.execute(
        """
        select table_name from duckdb_columns()
        where schema_name = 'main' and column_name in ('source', 'source_file')
          and table_name in (select table_name from duckdb_tables() where schema_name = 'main')
        group by table_name having count(*) = 2 order by table_name
        """
    ).fetchall()
    return [row[0] for row in rows]


def rename_files(con: duckdb.DuckDBPyConnection, renames: list[tuple[str, str, str]]) -> None:
    """Rename recorded files, (source, old name, new name), in every table that names them."""
    if not renames:
        return
    con.execute("create or replace temp table _renames (source varchar, old varchar, new varchar)")
    con.executemany("insert into _renames values (?, ?, ?)", renames)
    try:
        for table in file_tables(con):
            con.execute(
                f"""
                update {table} set source_file = r.new from _renames as r
                where {table}.source = r.source and {table}.source_file = r.old
                """
            )
    finally:
        con.execute("drop table _renames")


def relocate_to_project(con: duckdb.DuckDBPyConnection, base_dir: Path) -> int:
    """Rename files recorded by their absolute path inside `base_dir` (as warehouses made
    before relative names did) to their relative names; return how many were renamed."""
    prefix = str(base_dir).rstrip(os.sep) + os.sep
    names = con.execute(
        "select distinct source, source_file from ingest_log where starts_with(source_file, ?)",
        [prefix],
    ).fetchall()
    renames = [(source, name, recorded_name(Path(name), base_dir)) for source, name in names]
    rename_files(con, renames)
    return len(renames)


def moved_from(
    con: duckdb.DuckDBPyConnection, source: str, content_hash: str, base_dir: Path
) -> str | None:
    """The recorded name of an earlier file of `source` whose version in use has exactly this
    content and whose path no longer exists (the most recently loaded one), or None."""
    rows = con.execute(
        """
        with versions as (
            select source_file, content_hash, status, finished_at,
                   row_number() over (partition by source_file order by finished_at desc) as rank
            from ingest_log
            where source = ? and status in ('loaded', 'replaced', 'rejected', 'moved')
        )
        select source_file from versions
        -- a rejected version loaded nothing: there are no rows to carry over
        where rank = 1 and status <> 'rejected' and content_hash = ?
        order by finished_at desc
        """,
        [source, content_hash],
    ).fetchall()
    for (name,) in rows:
        if not path_of(name, base_dir).exists():
            return name
    return None


def _numbers_first(name: str) -> list[tuple[int, int | str]]:
    """`name` as runs of digits (compared as numbers) and of other characters."""
    return [(0, int(run)) if run.isdigit() else (1, run) for run in re.findall(r"\d+|\D+", name)]


def misnumbered(names: list[str]) -> tuple[str, str] | None:
    """Two of `names`, the first sorting before the second by name but numbered after it
    (``eshop_10.csv``, ``eshop_9.csv``), or None when name order is number order.

    Why it matters: a snapshot source's latest export is the file with the greatest name
    (`sql/macros/snapshot_exports.sql`), so with counters that are not zero-padded the tenth
    export reads as older than the ninth: the ninth's records would be the current ones, and
    every record only the tenth holds would read as new, then as deleted."""
    for earlier, later in itertools.pairwise(sorted(names)):
        if _numbers_first(later) < _numbers_first(earlier):
            return earlier, later
    return None
