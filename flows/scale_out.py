"""`[scale] task_runner = "dask"`: the Dask task runner and the mapper that feeds it Prefect tasks.

Prefect sends a task to its flow's task runner only when the task is submitted or mapped
(`.submit()`, `.map()`); a task *called* (as the nightly flow calls its stages) runs in the flow's
own process. So the resolve stage still runs in the flow's process, next to the DuckDB file, and
only its partitioned comparison work is mapped: `map_as_tasks` turns each partition into a
Prefect task run that the flow run's task runner — a `prefect_dask.DaskTaskRunner` on the
`resolve-on-dask` subflow — executes on a Dask worker. See docs/scaling.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_dask import DaskTaskRunner

from ccv.config import ScaleConfig
from ccv.identity.partitions import Mapper


def dask_task_runner(scale: ScaleConfig) -> DaskTaskRunner:
    """The scheduler at `dask_address`, or a temporary local cluster of `dask_workers` processes.

    Local workers get one thread each (the work is CPU-bound Python/NumPy: processes, not
    threads, give parallelism) and no dashboard; the cluster lives as long as the subflow.
    """
    if scale.dask_address:
        return DaskTaskRunner(address=scale.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": scale.dask_workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
    )


@contextmanager
def workers_report_here() -> Iterator[None]:
    """Make Dask workers record their task runs in this process's Prefect API.

    A worker runs its task under the settings of the process that submitted it. Without
    `PREFECT_API_URL`, this process serves a temporary API of its own, and its settings name
    none: every worker would then start yet another temporary API (tens of seconds each, and its
    task runs would be lost with it). Naming this process's API for the duration fixes that for
    a local cluster; a remote cluster needs a Prefect server it can reach (docs/scaling.md).
    """
    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings({PREFECT_API_URL: str(get_client(sync_client=True).api_url)}):
        yield


def map_as_tasks(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """`fn` over `items` as one Prefect task run each, on the current flow run's task runner.

    Results come back in item order; a failed task run raises here and so fails the stage.
    """
    as_task = task(fn, name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE)
    return as_task.map(items).result()


def task_mapper(scale: ScaleConfig) -> Mapper:
    """The mapper for `scale`: `partitions` pair partitions, each a Prefect task run."""
    return Mapper(partitions=scale.partitions, map=map_as_tasks)
