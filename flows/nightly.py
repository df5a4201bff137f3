"""The `nightly` Prefect flow: it only orchestrates; every task calls one function of ccv.pipeline.

Runs without a Prefect server (Prefect starts a temporary local API) or against one when
`PREFECT_API_URL` is set. `deployment()` builds the scheduled deployment that `ccv serve` serves.

With `[scale] task_runner = "dask"` the resolve stage runs inside the `resolve-on-dask` subflow,
whose task runner is a `DaskTaskRunner`: the stage's pair partitions run there as Prefect tasks
(`flows/scale_out.py`, docs/scaling.md). Everything else runs in this process either way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.schedules import Cron
from prefect.tasks import exponential_backoff

from ccv import pipeline
from ccv.config import Config, load_config
from ccv.identity.resolve import ResolveResult
from flows.scale_out import dask_task_runner, task_mapper, workers_report_here

# Reading input files can flake on shared storage: retry it, waiting longer each time (10, 20,
# 40 s). A retry keeps the files an earlier attempt loaded (reported as it logged them) and
# replaces what a file cut short left (`ingest_file`). Computing and publishing are not retried
# (a failed publish leaves the published version untouched; the next run starts clean).
ingest_task = task(
    pipeline.ingest_stage,
    name="ingest",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    cache_policy=NO_CACHE,
)
resolve_task = task(pipeline.resolve_stage, name="resolve", cache_policy=NO_CACHE)
build_task = task(pipeline.build_stage, name="build", cache_policy=NO_CACHE)
publish_task = task(pipeline.publish_stage, name="publish", cache_policy=NO_CACHE)
report_task = task(pipeline.report_stage, name="report", cache_policy=NO_CACHE)


@flow(name="resolve-on-dask", validate_parameters=False)
def resolve_on_dask(run: pipeline.Run, config: Config) -> ResolveResult:
    """The resolve stage, its pair partitions mapped as tasks onto this flow's Dask task runner."""
    return resolve_task(run, config, task_mapper(config.scale))


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of")
    return f"nightly-{as_of or 'as-of-' + str(dt.date.today())}"


@flow(name="nightly", flow_run_name=_run_name, validate_parameters=True)
def nightly(
    config_path: str = "ccv.toml",
    as_of: dt.date | None = None,
    full_refresh: bool = False,
) -> pipeline.RunSummary:
    """Ingest every source, resolve identities, build the warehouse and publish the marts."""
    config = load_config(config_path)
    limit = {"timeout_seconds": config.schedule.stage_timeout_minutes * 60}
    with pipeline.run_context(config, full_refresh) as run:
        files = ingest_task.with_options(**limit)(run, config)
        if config.scale.task_runner == "dask":
            on_dask = resolve_on_dask.with_options(
                task_runner=dask_task_runner(config.scale), **limit
            )
            with workers_report_here():
                resolved = on_dask(run, config)
        else:
            resolved = resolve_task.with_options(**limit)(run, config)
        as_of = build_task.with_options(**limit)(run, config, as_of)
        publish_task.with_options(**limit)(run, config)
        report, markdown = report_task.with_options(**limit)(run)
        create_markdown_artifact(
            markdown=markdown + f"\n\nFull report: `{report}`",
            key="ccv-run-report",
            description=f"ccv nightly run {run.run_id}",
        )
    return pipeline.summarize(run, files, resolved, as_of, report)


def deployment(config: Config, config_path: Path):
    """The scheduled `nightly` deployment for `config` (cron and timezone from [schedule])."""
    return nightly.to_deployment(
        name="nightly",
        schedules=[Cron(config.schedule.cron, timezone=config.schedule.timezone)],
        parameters={"config_path": str(config_path)},
        description="ccv nightly: ingest, resolve, build, publish",
    )
