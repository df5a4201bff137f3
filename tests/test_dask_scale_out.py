"""Scale-out: the nightly flow on a local Dask cluster of two worker processes (issue 8).

The sample runs once in-process (`run_nightly`, what `task_runner = "local"` runs) and once
through the Prefect flow with `[scale] task_runner = "dask"`; the customers, the evidence behind
them and the marts must be identical, and the comparison work must really have run as Prefect
task runs of the `resolve-on-dask` subflow.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.testing.utilities import prefect_test_harness

from flows.nightly import nightly
from tests.conftest import make_project

PARTITIONS = 4
DASK = f"""
[scale]
task_runner = "dask"
dask_workers = 2
partitions = {PARTITIONS}
"""
# Same rows, whatever the runner; `run_id` is the only column that differs between two runs.
COMPARED = ("customer_xref", "match_evidence", "identity_records", "rfm_scores", "loyalty_segments")


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory) -> Path:
    """Config path of a sample project published by the flow on a 2-worker local Dask cluster."""
    config_path = make_project(tmp_path_factory.mktemp("dask"))
    config_path.write_text(config_path.read_text() + DASK)
    with prefect_test_harness(server_startup_timeout=120):
        summary = nightly(config_path=str(config_path))
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs()
            (subflow,) = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["resolve-on-dask"]))
            )
    assert summary.resolve.customers > 0
    partitions = [t for t in task_runs if t.name.startswith("compare-partition")]
    # every partition of the pairs was a task run of the Dask subflow, and all completed
    assert 2 <= len(partitions) <= PARTITIONS
    assert {t.flow_run_id for t in partitions} == {subflow.id}
    assert {t.state_name for t in partitions} == {"Completed"}
    assert subflow.state_name == "Completed"
    return config_path


def rows(config_path: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(config_path.parent / "warehouse" / "ccv.duckdb"), True) as con:
        columns = [c for c in con.table(table).columns if c != "run_id"]
        return con.sql(f"select {', '.join(columns)} from {table} order by all").fetchall()


@pytest.mark.parametrize("table", COMPARED)
def test_dask_run_publishes_what_the_local_run_publishes(published_sample, dask_run, table):
    local, on_dask = rows(published_sample, table), rows(dask_run, table)
    assert local  # an empty table would prove nothing
    assert on_dask == local
