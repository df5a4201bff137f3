"""Large CSV files scanned as pieces, one per DuckDB thread, so that rows are numbered in parallel.

Every record needs its position in the file (raw `row_number`, quarantine, "first occurrence
wins" for repeated ids). DuckDB 2.0's CSV reader has no `file_row_number`, and a streaming
`row_number() over ()` runs the whole pipeline above it (parse, map, check, insert) on one thread.
A `union all` of one such numbered scan per piece runs the pieces on different threads. Each piece
starts numbering where the previous one ended (its records are counted first) and its rejected
lines are shifted by the piece's first physical line, so the rows, their numbers and the rejects
are exactly those of one scan of the whole file (a parity test compares both).

A file is cut only just after a newline that lies outside quotes: one with an even number of quote
characters before it, which holds for RFC 4180 quoting (a quote inside a field is doubled). Files
where that does not hold are not cut: an escape character other than the quote, a comment
character, skipped preamble rows, a multi-byte encoding (UTF-16), or an odd number of quotes
overall (a broken quote somewhere: the whole-file scan reports it as it always did).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# A file is cut into at most one piece per thread, and only into pieces of at least this size:
# below it the parallel scan saves less than counting and copying the pieces cost.
SPLIT_MIN_BYTES = 64 << 20
_WINDOW = 64 << 20  # bytes counted at a time (counting never holds the whole file)
SPLITTABLE_ENCODINGS = ("utf-8", "latin-1")


@dataclass(frozen=True)
class Piece:
    """Bytes of a CSV file copied to `path`; its first line is line `first_line` of the file."""

    path: Path
    first_line: int

    @property
    def has_header(self) -> bool:
        return self.first_line == 1


def _count(m: mmap.mmap, start: int, end: int, byte: bytes) -> int:
    return sum(m[i : min(i + _WINDOW, end)].count(byte) for i in range(start, end, _WINDOW))


def cut_points(path: Path, quote: str, parts: int) -> list[tuple[int, int]]:
    """Byte offsets (and line numbers) where pieces 2..`parts` start: near equal sizes, each just
    after a newline with an even number of `quote` characters before it."""
    q = quote.encode("latin-1")
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        size = len(m)
        if _count(m, 0, size, q) % 2:
            return []
        points: list[tuple[int, int]] = []
        pos = quotes = lines = 0  # quotes and newlines in m[:pos]
        for k in range(1, parts):
            target = size * k // parts
            if target > pos:
                quotes += _count(m, pos, target, q)
                lines += _count(m, pos, target, b"\n")
                pos = target
            while (newline := m.find(b"\n", pos)) >= 0:
                quotes += _count(m, pos, newline + 1, q)
                lines += 1
                pos = newline + 1
                if quotes % 2 == 0:
                    break
            if newline < 0 or pos >= size:
                break
            points.append((pos, lines + 1))
        return points


def _copy(src, dst: Path, start: int, end: int) -> None:
    src.seek(start)
    with dst.open("wb") as out:
        remaining = end - start
        while remaining > 0:
            chunk = src.read(min(_WINDOW, remaining))
            out.write(chunk)
            remaining -= len(chunk)


def pieces_wanted(path: Path, threads: int) -> int:
    """How many pieces `path` should be scanned as: one per thread, each at least
    SPLIT_MIN_BYTES (1: do not cut)."""
    return max(1, min(threads, path.stat().st_size // max(SPLIT_MIN_BYTES, 1)))


@contextlib.contextmanager
def csv_pieces(path: Path, quote: str, encoding: str, parts: int) -> Iterator[list[Piece]]:
    """The file cut into up to `parts` pieces in a temporary folder (removed afterwards), or
    an empty list when it cannot be cut safely."""
    points = (
        cut_points(path, quote, parts) if parts >= 2 and encoding in SPLITTABLE_ENCODINGS else []
    )
    if not points:
        yield []
        return
    folder = Path(tempfile.mkdtemp(prefix="ccv-pieces-"))
    try:
        bounds = [(0, 1), *points, (path.stat().st_size, None)]
        pieces = []
        with path.open("rb") as src:
            for i, ((start, first_line), (end, _)) in enumerate(itertools.pairwise(bounds)):
                piece = Piece(folder / f"piece{i}{path.suffix}", first_line)
                _copy(src, piece.path, start, end)
                pieces.append(piece)
        yield pieces
    finally:
        shutil.rmtree(folder, ignore_errors=True)
