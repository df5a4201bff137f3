"""Versioned publishing: every run builds a complete new version; one rename publishes it.

Layout (paths from `[warehouse]`)::

    warehouse/
      ccv.duckdb -> versions/current/ccv.duckdb      (what analysts open)
      marts      -> versions/current/marts           (Parquet)
      versions/
        current -> 20261123T020000-1a2b3c             (the published version)
        20261123T020000-1a2b3c/ccv.duckdb, marts/, PUBLISHED
        20261122T020000-9f8e7d/...                     (kept for rollback)

A run copies the current DuckDB file into its own version folder (a clone sharing its blocks
where the filesystem can, see `clone_or_copy`) and hard-links the previous
Parquet snapshots into it (cheap, and old snapshots are never rewritten), builds there, and only
then swaps the `current` symlink with one atomic rename. A run killed at any point leaves
`current` — and so everything analysts read — exactly as it was. An analyst's open DuckDB session
keeps reading the version it opened; reconnecting shows the new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ccv.config import Config

MARKER = "PUBLISHED"


class VersionError(RuntimeError):
    """A version operation that cannot be carried out (e.g. rollback with nothing to go back to)."""


@dataclass(frozen=True)
class Layout:
    """Where versions live and where the user-facing links point."""

    versions_dir: Path
    db_link: Path
    marts_link: Path
    keep: int
    keep_snapshot_days: int = 0
    db_name: str = "ccv.duckdb"

    @classmethod
    def from_config(cls, config: Config) -> Layout:
        """The layout of `config`'s warehouse, with absolute paths."""
        wh = config.warehouse
        return cls(
            versions_dir=config.resolve(wh.versions_dir),
            db_link=config.resolve(wh.path),
            marts_link=config.resolve(wh.marts_dir),
            keep=wh.keep_versions,
            keep_snapshot_days=wh.keep_snapshot_days,
        )

    @property
    def current(self) -> Path:
        """The symlink naming the published version."""
        return self.versions_dir / "current"

    @property
    def lock_path(self) -> Path:
        """The run lock (see lock.py)."""
        return self.versions_dir / ".lock"

    def version(self, run_id: str) -> Path:
        """The folder of one run's version."""
        return self.versions_dir / run_id

    def db(self, run_id: str) -> Path:
        """The DuckDB file of one run's version."""
        return self.version(run_id) / self.db_name

    def marts(self, run_id: str) -> Path:
        """The Parquet marts folder of one run's version."""
        return self.version(run_id) / "marts"


def current_run_id(layout: Layout) -> str | None:
    """The run id of the published version, or None before the first publish."""
    if not layout.current.is_symlink():
        return None
    return Path(os.readlink(layout.current)).name


def published_versions(layout: Layout) -> list[str]:
    """Run ids of the versions on disk that were published, oldest first."""
    if not layout.versions_dir.exists():
        return []
    return sorted(
        p.name
        for p in layout.versions_dir.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(REMOVING)  # set aside for removal (`set_aside`)
        and (p / MARKER).exists()
    )


@dataclass(frozen=True)
class VersionInfo:
    """What `ccv versions` shows of a kept version, read from its own DuckDB file."""

    as_of_date: dt.date | None
    published_at: dt.datetime | None
    customers: int | None
    size: int
    made_by: str
    """"nightly run" (its run is the file's last published run) or "erasure" (`ccv forget`
    rewrote a published file under a new id)"""


def describe(layout: Layout, run_id: str) -> VersionInfo:
    """The as-of date, customers and publishing time of version `run_id` (None where its
    files cannot say: an unreadable or foreign file still lists, with its size)."""
    db = layout.db(run_id)
    size = db.stat().st_size if db.exists() else 0
    last = customers = None
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute(
                "select run_id, as_of_date, finished_at from runs where status = 'published' "
                "order by started_at desc limit 1"
            ).fetchall()
            last = rows[0] if rows else None
            customers = con.execute("select count(*) from customers").fetchall()[0][0]
    except duckdb.Error:
        pass
    made_by = "nightly run" if last and last[0] == run_id else "erasure" if last else "?"
    try:  # when this version was published (an erasure's is not its nightly run's)
        published_at = dt.datetime.fromisoformat(
            (layout.version(run_id) / MARKER).read_text().strip()
        )
    except (OSError, ValueError):
        published_at = None
    return VersionInfo(
        as_of_date=last[1] if last else None,
        published_at=published_at,
        customers=customers,
        size=size,
        made_by=made_by,
    )


def prepare_version(layout: Layout, run_id: str, full_refresh: bool) -> Path:
    """Create the run's version folder, starting from a copy of the published DuckDB file."""
    previous = current_run_id(layout)
    if previous:
        ensure_room(layout, layout.db(previous))
    folder = layout.version(run_id)
    (folder / "marts").mkdir(parents=True)
    if previous and not full_refresh:
        clone_or_copy(layout.db(previous), layout.db(run_id))
    return layout.db(run_id)


def ensure_room(layout: Layout, published: Path) -> None:
    """Refuse to start a run when the disk cannot hold another warehouse of the published
    one's size: a run starts from a copy of it (a full refresh writes about as much anew).

    Why before anything is written: a disk that fills up halfway through a night fails it just
    as safely (nothing is published), but after minutes of work and with a DuckDB I/O error
    that does not say what to do; this names the sizes and the way out.
    """
    needed = published.stat().st_size
    free = shutil.disk_usage(layout.versions_dir).free
    if free < needed:
        kept = len(published_versions(layout))
        raise VersionError(
            f"not enough free disk space for tonight's version of the warehouse: it needs "
            f"{_gb(needed)} (the size of the published one), {_gb(free)} are free on "
            f"{layout.versions_dir}. {kept} version(s) are kept for rollback "
            f"([warehouse] keep_versions = {layout.keep}; `ccv versions` lists them): lower "
            "keep_versions or free space, then run again."
        )


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


# Linux's FICLONE ioctl, _IOW(0x94, 9, int): the target shares the source's blocks
FICLONE = 0x40049409


def clone_or_copy(source: Path, target: Path) -> str:
    """Make `target` a copy of `source`: a clone where the filesystem can make one, else a
    byte copy; return which ("clone" or "copy").

    Why: every run starts from the published DuckDB file, and copying it costs time in
    proportion to its size (at a million customers 4.5 GB, ~6-8 s of a ~80 s delta night). A
    clone (reflink: XFS, Btrfs and other copy-on-write filesystems on Linux) takes
    milliseconds whatever the size, and the run's writes then go to new blocks: the published
    file is untouched, as with a copy. ext4 and tmpfs refuse (EOPNOTSUPP), as does a target
    on another filesystem (EXDEV): those get the byte copy.
    """
    if sys.platform.startswith("linux"):
        with open(source, "rb") as src, open(target, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
                return "clone"
            except OSError:
                pass
    shutil.copyfile(source, target)
    return "copy"


def carry_snapshots(
    layout: Layout, run_id: str, tables: tuple[str, ...], replace_on: dt.date
) -> None:
    """Hard-link the published version's Parquet snapshots into this run's version.

    The snapshot of `replace_on` is not carried: this run writes it anew (re-running an as-of
    date replaces its snapshot). With `keep_snapshot_days`, neither are snapshots of that many
    days or more before it: the version is published without them, and once the versions that
    still hold them are pruned their files are gone.
    """
    previous = current_run_id(layout)
    if not previous:
        return
    oldest = (
        replace_on - dt.timedelta(days=layout.keep_snapshot_days - 1)
        if layout.keep_snapshot_days
        else dt.date.min
    )
    for table in tables:
        source = layout.marts(previous) / table
        if not source.exists():
            continue
        for partition in sorted(source.glob("snapshot_on=*")):
            day = dt.date.fromisoformat(partition.name.removeprefix("snapshot_on="))
            if day == replace_on or day < oldest:
                continue
            target = layout.marts(run_id) / table / partition.name
            target.mkdir(parents=True, exist_ok=True)
            for file in partition.iterdir():
                os.link(file, target / file.name)


HISTORY = "_history"
"""A published mart's `<mart>_history` view: every snapshot of it the version holds."""


def history_view_sql(mart: str, folder: Path, temp: bool = False) -> str:
    """`create` the `<mart>_history` view over the Parquet snapshots in `folder` (one
    `snapshot_on=` partition a night); `temp`: a session's own view (a read-only connection
    may make one; it hides the stored view of that name)."""
    files = str(folder / "snapshot_on=*" / "*.parquet").replace("'", "''")
    return (
        f'create or replace {"temp view" if temp else "view"} "{mart}{HISTORY}" as '
        f"select * from read_parquet('{files}', hive_partitioning = true, union_by_name = true)"
    )


def history_views(con: duckdb.DuckDBPyConnection, marts: Path, temp: bool = False) -> None:
    """Point each stored `<mart>_history` view at the snapshots under `marts` (a version's
    Parquet folder); without `temp` a view whose mart has no snapshots there is dropped.

    Why: a view names its files by absolute path (DuckDB reads a relative one against the
    working directory, not the warehouse), so the views a version stores name the folder it
    was built in. After the project moves (README, *Configuration*: moving a project loads
    nothing again) they name a folder that is gone until the next night stores new ones, so a
    session on the moved warehouse makes its own (`temp`) where a stored one names another
    folder."""
    stored = con.execute(
        "select view_name, sql from duckdb_views() where not internal and not temporary "
        "and database_name = current_database() and suffix(view_name, ?)",
        [HISTORY],
    ).fetchall()
    for view, sql in sorted(stored):
        mart = view.removesuffix(HISTORY)
        folder = marts / mart
        if not folder.exists():
            if not temp:
                con.execute(f'drop view "{view}"')
        elif not (temp and str(folder).replace("'", "''") in sql):  # a session's: if stale
            con.execute(history_view_sql(mart, folder, temp))


def publish(layout: Layout, run_id: str) -> None:
    """Make `run_id` the published version (one atomic rename) and set aside the versions no
    longer kept (`set_aside`) for `removing` to remove.

    Why not remove them here: at a million customers each is a 4 GB DuckDB file, and removing
    one (the kernel dropping its cached pages) took 0.6-0.9 s of every night; the pipeline
    removes them while it writes the report (`pipeline.report_stage`)."""
    (layout.version(run_id) / MARKER).write_text(dt.datetime.now().isoformat() + "\n")
    _switch_current(layout, run_id)
    _ensure_links(layout)
    set_aside(layout)


def rollback(layout: Layout, to: str | None = None) -> str:
    """Publish an earlier kept version again (default: the one before the current); return it."""
    versions = published_versions(layout)
    current = current_run_id(layout)
    if to is None:
        earlier = [v for v in versions if current is None or v < current]
        if not earlier:
            raise VersionError(f"no published version before {current} is kept to roll back to")
        to = earlier[-1]
    elif to not in versions:
        raise VersionError(f"version {to} is not kept; kept versions: {', '.join(versions)}")
    _switch_current(layout, to)
    _ensure_links(layout)
    return to


def prune(layout: Layout) -> None:
    """Keep the newest `keep` published versions (and the current one); remove the rest, the
    folders of runs that never published (crashed or failed runs) and what a removal cut short
    left set aside."""
    remove(set_aside(layout))


REMOVING = ".removing-"
"""the name prefix of a version folder set aside for removal (`set_aside`)"""


def set_aside(layout: Layout) -> list[Path]:
    """Rename the folders `prune` removes to hidden names (``.removing-<run id>``) and return
    them, with any such folder a killed removal left behind.

    Why: a folder is removed file by file, so a run killed meanwhile would leave a published
    version that `ccv versions` lists and `ccv rollback` accepts while its DuckDB file is gone.
    One rename takes it out of every listing at once."""
    if not layout.versions_dir.exists():
        return []
    current = current_run_id(layout)
    published = published_versions(layout)
    keep = set(published[-layout.keep :]) | ({current} if current else set())
    aside = []
    for path in sorted(layout.versions_dir.iterdir()):
        if path.is_symlink() or not path.is_dir() or path.name in keep:
            continue
        if not path.name.startswith(REMOVING):
            path = path.rename(path.with_name(REMOVING + path.name))
        aside.append(path)
    return aside


def remove(paths: list[Path]) -> None:
    """Remove the folders `set_aside` returned."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def removing(layout: Layout) -> Iterator[None]:
    """Remove the folders set aside (`set_aside`) on a thread of their own meanwhile; wait for
    it on the way out. A removal cut short (the process killed) is finished by the next `prune`
    (every run starts with one)."""
    if not layout.versions_dir.exists():
        yield
        return
    aside = sorted(p for p in layout.versions_dir.glob(REMOVING + "*") if p.is_dir())
    thread = threading.Thread(target=remove, args=(aside,), name="remove-versions")
    thread.start()
    try:
        yield
    finally:
        thread.join()


def discard(layout: Layout, run_id: str) -> None:
    """Remove an unpublished version folder (a failed run)."""
    if run_id != current_run_id(layout):
        shutil.rmtree(layout.version(run_id), ignore_errors=True)


def _switch_current(layout: Layout, run_id: str) -> None:
    tmp = layout.versions_dir / f".current.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id)
    os.replace(tmp, layout.current)


def _ensure_links(layout: Layout) -> None:
    """Create the user-facing links into `current` if they are missing."""
    for link, target in (
        (layout.db_link, layout.current / layout.db_name),
        (layout.marts_link, layout.current / "marts"),
    ):
        if link.is_symlink():
            continue
        if link.exists():
            raise VersionError(
                f"{link} exists and is not a link into {layout.versions_dir}; move it away "
                "(warehouses from before versioned publishing are not migrated)"
            )
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target, link.parent))
