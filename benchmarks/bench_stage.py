"""Benchmark one stage of the night (resolve or build) on a cached warehouse.

    .venv/bin/python benchmarks/bench_stage.py --customers 300000 --stage resolve
    .venv/bin/python benchmarks/bench_stage.py --customers 300000 --stage build

Why: a whole night at 1M customers takes about ten minutes, most of it in stages other than the
one being worked on. The first call at a size runs the night's earlier stages once on the inputs of
`benchmarks/run.py` (same cache folder) and keeps the DuckDB file as it was before the stage
(`<project>/stages/before_<stage>.duckdb`); every call then copies that file to a scratch folder
and runs only the stage on it. Prints wall and CPU seconds and peak RSS for the stage and for
each of its phases (the progress steps the stage reports through `ccv.progress`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from run import ROOT, PeakRSS, cpu_seconds, prepare

from ccv import pipeline
from ccv.config import load_config
from ccv.progress import LOGGER

BEFORE = {"resolve": ("ingest",), "build": ("ingest", "resolve")}
# the progress tasks (`ccv.progress.advance`) whose steps are a stage's phases
TASKS = {"resolve": ("resolve",), "build": ("core models", "marts models")}


class Phases(logging.Handler):
    """Wall, CPU seconds and peak RSS between the progress reports of one task."""

    def __init__(self, tasks: tuple[str, ...], memory: PeakRSS) -> None:
        super().__init__(level=logging.INFO)
        self.tasks, self.memory = tasks, memory
        self.rows: list[dict] = []
        self._name, self._wall, self._cpu = "start", time.perf_counter(), cpu_seconds()

    def emit(self, record: logging.LogRecord) -> None:
        task, _, _, detail = getattr(record, "ccv_progress", (None, 0, 0, ""))
        if task in self.tasks:
            # a task's last report has no detail: what follows is the layer's checks and
            # whatever the stage does before its next task (e.g. the CLV fit after core models)
            detail = detail or "after the last step"
            self.close_phase(f"{task}: {detail}" if len(self.tasks) > 1 else detail)

    def close_phase(self, next_name: str) -> None:
        now, cpu = time.perf_counter(), cpu_seconds()
        peak = self.memory.take_window_peak_mb()
        if self._name != "start" or now - self._wall > 0.5:
            self.rows.append(
                {
                    "phase": self._name,
                    "seconds": round(now - self._wall, 2),
                    "cpu_seconds": round(cpu - self._cpu, 2),
                    "peak_rss_mb": round(peak),
                }
            )
        self._name, self._wall, self._cpu = next_name, now, cpu


def cached_warehouse(config_path: Path, stage: str) -> Path:
    """The DuckDB file as it stands before `stage`, made once per input size (on the way, the
    files before the earlier stages are kept too)."""
    cache = config_path.parent / "stages"
    if (cache / f"before_{stage}.duckdb").exists():
        return cache / f"before_{stage}.duckdb"
    cache.mkdir(exist_ok=True)
    config = load_config(config_path)
    started = time.perf_counter()
    with pipeline.run_context(config, full_refresh=True) as nightly:
        for name, following in zip(BEFORE[stage], (*BEFORE[stage][1:], stage), strict=True):
            getattr(pipeline, f"{name}_stage")(nightly, config)
            with pipeline.connect(nightly.build_path) as con:
                con.execute("checkpoint")
            shutil.copy(nightly.build_path, cache / f"before_{following}.duckdb")
    print(f"cached the warehouse before {stage} in {time.perf_counter() - started:.1f} s")
    return cache / f"before_{stage}.duckdb"


def run_stage(config_path: Path, stage: str, warehouse: Path) -> dict:
    """Run `stage` on a scratch copy of `warehouse`."""
    config = load_config(config_path)
    with tempfile.TemporaryDirectory(dir=config_path.parent) as scratch:
        db = Path(scratch) / "warehouse.duckdb"
        shutil.copy(warehouse, db)
        with pipeline.connect(db) as con:
            run_id, started_at = con.execute(
                "select run_id, started_at from runs order by started_at desc limit 1"
            ).fetchone()
        nightly = SimpleNamespace(
            run_id=run_id, started_at=started_at or dt.datetime.now(), build_path=db
        )
        with PeakRSS() as memory:
            phases = Phases(TASKS[stage], memory)
            LOGGER.addHandler(phases)
            wall, cpu = time.perf_counter(), cpu_seconds()
            try:
                getattr(pipeline, f"{stage}_stage")(nightly, config)
                phases.close_phase("end")
            finally:
                LOGGER.removeHandler(phases)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {
        "stage": stage,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(memory.peak_mb),
        "phases": phases.rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--stage", choices=sorted(BEFORE), default="resolve")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    config_path = prepare(args.customers, args.seed, args.out, clear_warehouse=False)
    warehouse = cached_warehouse(config_path, args.stage)
    print(json.dumps(run_stage(config_path, args.stage, warehouse), indent=2))


if __name__ == "__main__":
    main()
