"""Which version of an input file a night sees: its content hash, read without reading the file
when its size and modification time are those it had when it was last hashed.

Why: a night looks at every file of every source to skip the ones it loaded before, and used to
hash each one whole. A glob folder keeps its nightly drops, so that after a year a night hashed
every drop of the year again (at a million customers the nine benchmark files alone took 0.9 s
a night). Like `make`, `rsync` and git's index, a file whose size and modification time (in
nanoseconds) are those logged with its last hash is taken to hold the same bytes. A file
rewritten with other content of the same size and the same modification time would be taken
as unchanged: touch it (or run `--full-refresh`) to have it read again. A file modified less
than `RACY_NS` before it was hashed could still change within the same tick of the file
system's clock (git's "racy clean" files): its time is not logged, so the next night hashes it
again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

# a file modified less than this before it is hashed is hashed again next night
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class FileVersion:
    """One delivered version of a file: the SHA-256 of its bytes (its identity in
    `ingest_log`), and the size and modification time it had when it was hashed (None when
    that was too recent to trust)."""

    content_hash: str
    size: int
    mtime_ns: int | None


def file_hash(path: Path) -> str:
    """SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_version(
    con: duckdb.DuckDBPyConnection, source: str, name: str, path: Path
) -> FileVersion:
    """The version of `path` (logged as `name` of `source`) now: the hash logged with the file's
    latest `ingest_log` row if its size and modification time are unchanged since, else the
    file hashed anew. The stat is taken before hashing, so a file changed while it is read
    is hashed again next night."""
    stat = path.stat()
    logged = con.execute(
        "select content_hash, file_size, file_mtime_ns from ingest_log "
        "where source = ? and source_file = ? and content_hash is not null "
        "order by finished_at desc limit 1",
        [source, name],
    ).fetchall()
    if logged and logged[0][1:] == (stat.st_size, stat.st_mtime_ns):
        return FileVersion(logged[0][0], stat.st_size, stat.st_mtime_ns)
    racy = time.time_ns() - stat.st_mtime_ns < RACY_NS
    return FileVersion(file_hash(path), stat.st_size, None if racy else stat.st_mtime_ns)
