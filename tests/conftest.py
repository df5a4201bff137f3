"""Shared fixtures: tiny configs and in-memory warehouses built from inline data."""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from ccv import pipeline
from ccv.config import Config, load_config, parse_config
from ccv.pipeline import RunSummary, run_nightly

NOW = dt.datetime(2026, 11, 1, 2, 0)
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """A `benchmarks/` script as a module, registered under its name: dataclasses need that,
    and so does a script that imports another (score_pipeline imports identity_score)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# A consent-events source whose customer_record_id names records of a customers source "crm".
CONSENTS = {
    "name": "prefs",
    "kind": "consents",
    "path": "consents.csv",
    "format": "csv",
    "customer_source": "crm",
    "columns": {
        "consent_id": "event_id",
        "customer_record_id": "customer",
        "email": "email",
        "channel": "channel",
        "is_opt_in": "status",
        "consented_at": "at",
        "method": "method",
    },
    "booleans": {"true": ["granted"], "false": ["withdrawn"]},
}


# A web shop's orders as JSON lines: one object per order.
WEB = {
    "name": "web",
    "kind": "orders",
    "path": "in.jsonl",
    "format": "jsonl",
    "columns": {"order_id": "id", "ordered_at": "at", "status": "status", "net_amount": "total"},
    "constants": {"channel": "web"},
}


def make_config(tmp_path: Path, *sources: dict, **sections) -> Config:
    """A validated config whose relative paths resolve inside tmp_path."""
    return parse_config({"sources": list(sources), **sections}, base_dir=tmp_path)


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    yield connection
    connection.close()


ROOT = Path(__file__).resolve().parents[1]


def night_without_report(config: Config) -> RunSummary:
    """A nightly run's stages up to publishing: `pipeline.run_nightly` without its report
    (its summary names no report). For tests that run nights and look at the published
    tables: the report only reads them, and is a third of a sample night."""
    with pipeline.run_context(config) as run:
        files = pipeline.ingest_stage(run, config)
        resolved = pipeline.resolve_stage(run, config)
        as_of = pipeline.build_stage(run, config)
        pipeline.publish_stage(run, config)
    return pipeline.summarize(run, files, resolved, as_of)


def make_project(root: Path) -> Path:
    """A copy of the sample project (config + data/sample) under `root`; its config path."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "ccv.toml", root / "ccv.toml")
    shutil.copytree(ROOT / "data" / "sample", root / "data" / "sample")
    return root / "ccv.toml"


def copy_of_published(config_path: Path, root: Path) -> Path:
    """A copy under `root` of a published project (e.g. `published_sample`): its config,
    inputs and published warehouse; its config path. For tests whose own runs come after
    nights another project already ran: a copy takes a fraction of a second, a night seconds. The
    version links are relative and the inputs keep their modification times, so the copy's next
    night finds its inputs unchanged, as the original's would (moving a project is supported:
    README, file names)."""
    shutil.copytree(config_path.parent, root, symlinks=True)
    return root / config_path.name


@pytest.fixture(scope="session")
def published_sample(tmp_path_factory) -> Path:
    """Config path of a sample project whose warehouse one nightly run (no Prefect) published.

    Shared by the tests that only read it; tests that run or break the pipeline make their own.
    """
    config_path = make_project(tmp_path_factory.mktemp("published"))
    run_nightly(load_config(config_path))
    return config_path
