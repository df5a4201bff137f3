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


def file_key(name: str) -> str:
    """`name` as it sorts in natural order: every run of the digits 0-9 left-padded with zeros
    to 20 places, as `sql/macros/file_key.sql` computes it in SQL.

    Why: which delivery of a record is the later one follows the order of the files' names
    within a run (its files share one load time), and a snapshot source's latest export is its
    last file in that order; in plain name order ``crm_10.csv`` sorts before ``crm_9.csv``, so
    the ninth export would read as the latest. A run also loads its files in this order."""
    return re.sub(r"[0-9]+", lambda digits: digits.group().zfill(20), name)
