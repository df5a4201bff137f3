"""Run independent steps of identity resolution side by side on the machine's cores.

Why threads: the heavy work over a million records — Arrow dictionary encoding and string
kernels, numpy sorts, takes and comparisons, pandas' integer hash tables, rapidfuzz's
`cpdist` — releases the GIL, so independent steps over one records frame (the blocking rules,
the comparisons, u from random pairs beside the candidate pairs' comparison) overlap in one
process without copying the frame to another. Results come back in the order of the inputs,
so the output is the same as a loop's, whatever the number of cores.

Memory: glibc gives each thread its own heap (arena) and keeps what the thread frees there
for reuse, so after side-by-side steps the process would hold every thread's working set
(+0.5 GB at a million records). `parallel_map` hands freed memory back to the system when
its threads are done (`frames.release_freed_memory`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import duckdb
import pyarrow as pa

from ccv.identity.frames import release_freed_memory

T = TypeVar("T")
R = TypeVar("R")


def workers(n_items: int) -> int:
    """Threads for `n_items` independent steps: one per core (Arrow's count), at most one each."""
    return max(1, min(n_items, pa.cpu_count()))


def parallel_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]``, computed in threads; the first error is raised."""
    items = list(items)
    if workers(len(items)) == 1:
        return [fn(item) for item in items]
    try:
        with ThreadPoolExecutor(max_workers=workers(len(items))) as pool:
            return list(pool.map(fn, items))
    finally:
        release_freed_memory()


def run_together(*steps: Callable[[], R]) -> list[R]:
    """Run independent zero-argument steps side by side; their results in order."""
    return parallel_map(lambda step: step(), steps)


Write = Callable[[duckdb.DuckDBPyConnection], object]  # a write, given the connection to use
Submit = Callable[[Write], None]  # takes a write and does it, now or beside


@contextlib.contextmanager
def writes_beside(con: duckdb.DuckDBPyConnection) -> Iterator[Submit]:
    """A `submit(write)` that runs `write(connection)` on a second connection to `con`'s
    database, in one background thread (writes in the order submitted), while this thread goes
    on; when the block ends every write is done, and the first error is raised.

    Why: a first night writes millions of standardised records (`identity_std`) that nothing
    reads again until the next night, and DuckDB compressing them into the file is seconds of
    work that needs no Python; beside it, this thread goes on with blocking and comparing,
    whose NumPy and rapidfuzz steps leave a core free part of the time. A write must only touch
    tables nothing else reads or writes until the block ends, and must not share mutable
    objects with this thread (pandas frames are copy-on-write: a column selection is a
    snapshot). On an error in the block the running write is interrupted and its outcome
    ignored: the block's error is the one raised.
    """
    writer = con.cursor()
    pool = ThreadPoolExecutor(max_workers=1)
    done: list[Future] = []
    try:
        yield lambda write: done.append(pool.submit(write, writer))
    except BaseException:
        writer.interrupt()
        pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        raise
    pool.shutdown(wait=True)
    writer.close()
    for future in done:
        future.result()
