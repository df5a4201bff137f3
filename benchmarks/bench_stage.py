"""Benchmark one stage of the night (ingest, resolve or build) on a cached warehouse.

    .venv/bin/python benchmarks/bench_stage.py --customers 300000 --stage resolve
    .venv/bin/python benchmarks/bench_stage.py --customers 300000 --stage build
    .venv/bin/python benchmarks/bench_stage.py --customers 1000000 --stage ingest --statements

Why: a whole night at 1M customers takes about ten minutes, most of it in stages other than the
one being worked on. The first call at a size runs the night's earlier stages once on the inputs of
`benchmarks/run.py` (same cache folder) and keeps the DuckDB file as it was before the stage
(`<project>/stages/before_<stage>.duckdb`); every call then copies that file to a scratch folder
and runs only the stage on it. Prints wall and CPU seconds and peak RSS for the stage and for
each of its phases (the progress steps the stage reports through `ccv.progress`).

Ingest needs no cache: before it the warehouse is empty (the schema and the run's row), so each
call makes that empty file in the scratch folder; its phases are the input files, then the
staging models. `--statements` also times every SQL statement the stage's connection runs (wall,
CPU seconds of the process, first line of the SQL) and prints the costliest. `--keep FILE`
copies the DuckDB file as the stage left it, so that two versions of the code can be compared
table by table (`EXCEPT ALL` both ways) on the same input. `--where N` samples the main
thread's stack with the RSS every 50 ms and prints the N code locations (the innermost two
frames of ccv's code, with line numbers) at which the process was largest: where to look when
a phase's peak is too high. `--profile FILE` writes the stage's cProfile stats (read them with
`python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from run import ROOT, PeakRSS, cpu_seconds, prepare

from ccv import pipeline
from ccv.config import load_config
from ccv.progress import LOGGER
from ccv.warehouse.schema import ensure_schema

BEFORE = {"ingest": (), "resolve": ("ingest",), "build": ("ingest", "resolve")}
# the progress tasks (`ccv.progress.advance`) whose steps are a stage's phases
TASKS = {
    "ingest": ("input files", "staging models"),
    "resolve": ("resolve",),
    "build": ("core models", "marts models"),
}


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

    @property
    def current(self) -> str:
        """The phase running now."""
        return self._name


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


class Statements:
    """A stand-in for a DuckDB connection that times every `execute`/`executemany` (wall and
    CPU seconds of the whole process, so DuckDB's threads count) and passes everything else on.
    Why: the progress phases say which file is costly, not which statement of it."""

    def __init__(self, con, phase) -> None:
        self._con, self._phase = con, phase
        self.rows: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self) -> Statements:
        self._con.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._con.__exit__(*exc)

    def _timed(self, method: str, sql: str, *args):
        wall, cpu = time.perf_counter(), cpu_seconds()
        getattr(self._con, method)(sql, *args)
        text = " ".join(str(sql).split())
        self.rows.append(
            {
                "phase": self._phase(),
                "seconds": round(time.perf_counter() - wall, 2),
                "cpu_seconds": round(cpu_seconds() - cpu, 2),
                "sql": text[:140],
            }
        )
        return self

    def execute(self, sql, *args):
        return self._timed("execute", sql, *args)

    def executemany(self, sql, *args):
        return self._timed("executemany", sql, *args)

    # results of the last statement, read through the stand-in (it returned itself)
    def fetchone(self):
        return self._con.fetchone()

    def fetchall(self):
        return self._con.fetchall()

    def df(self):
        return self._con.df()


class WhereRSS(PeakRSS):
    """`PeakRSS` that also notes where the main thread is in ccv's code at each sample (its
    innermost two frames under ``src/ccv``); `top(n)` gives the locations of the highest RSS.

    Why: a phase's peak (`Phases`) says when memory was high, not which statement held it; a
    location's peak is the largest RSS seen while that statement ran."""

    def __init__(self, every: float = 0.05) -> None:
        super().__init__(every)
        self.peaks: dict[str, float] = {}
        self._main = threading.get_ident()

    def _where(self) -> str:
        frame, names = sys._current_frames().get(self._main), []
        while frame is not None and len(names) < 2:
            if "/ccv/" in frame.f_code.co_filename:
                names.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        return " < ".join(names) or "(outside ccv)"

    def _sample(self) -> None:
        super()._sample()
        where = self._where()
        self.peaks[where] = max(self.peaks.get(where, 0), self.last_kb)

    def top(self, n: int) -> list[dict]:
        ranked = sorted(self.peaks.items(), key=lambda item: -item[1])[:n]
        return [{"where": where, "peak_rss_mb": round(kb / 1024)} for where, kb in ranked]


@contextlib.contextmanager
def timed_statements(phases: Phases, enabled: bool = True) -> Iterator[list[dict]]:
    """While open (and `enabled`), every connection a stage opens (`pipeline.open_build`) times
    its statements (`Statements`) under `phases`' current phase; the rows are in the yielded
    list once the block has closed."""
    connections: list[Statements] = []
    open_build = pipeline.open_build
    if enabled:
        pipeline.open_build = lambda *a: (
            connections.append(Statements(open_build(*a), lambda: phases.current))
            or connections[-1]
        )
    rows: list[dict] = []
    try:
        yield rows
    finally:
        pipeline.open_build = open_build
        rows.extend(row for c in connections for row in c.rows)


def empty_warehouse(db: Path) -> None:
    """The DuckDB file as a full-refresh run starts it: the schema and the run's row."""
    with pipeline.connect(db) as con:
        ensure_schema(con)
        con.execute(
            "insert into runs values (?, null, ?, null, 'running', true)",
            [pipeline.new_run_id(dt.datetime.now()), dt.datetime.now()],
        )


def run_stage(
    config_path: Path,
    stage: str,
    warehouse: Path | None,
    statements: bool = False,
    statements_file: Path | None = None,
    keep: Path | None = None,
    where: int = 0,
    profile: Path | None = None,
) -> dict:
    """Run `stage` on a scratch copy of `warehouse` (None: an empty one); `statements_file`
    receives every timed statement in the order run, one JSON object a line; `keep` receives
    the DuckDB file as the stage left it (to compare two versions' outputs table by table)."""
    config = load_config(config_path)
    with tempfile.TemporaryDirectory(dir=config_path.parent) as scratch:
        db = Path(scratch) / "warehouse.duckdb"
        if warehouse is None:
            empty_warehouse(db)
        else:
            shutil.copy(warehouse, db)
        with pipeline.connect(db) as con:
            ensure_schema(con)  # a cached file may predate tables a stage writes (run_stages)
            run_id, started_at = con.execute(
                "select run_id, started_at from runs order by started_at desc limit 1"
            ).fetchone()
        nightly = SimpleNamespace(
            run_id=run_id, started_at=started_at or dt.datetime.now(), build_path=db
        )
        with WhereRSS() as memory:
            phases = Phases(TASKS[stage], memory)
            LOGGER.addHandler(phases)
            wall, cpu = time.perf_counter(), cpu_seconds()
            profiler = cProfile.Profile() if profile else None
            try:
                with timed_statements(phases, statements) as rows:
                    if profiler:
                        profiler.enable()
                    getattr(pipeline, f"{stage}_stage")(nightly, config)
                    phases.close_phase("end")
            finally:
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(profile)
                LOGGER.removeHandler(phases)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        if keep is not None:
            shutil.copy(db, keep)
    result = {
        "stage": stage,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(memory.peak_mb),
        "phases": phases.rows,
    }
    if where:
        result["peak_rss_by_location"] = memory.top(where)
    if statements:
        if statements_file:
            statements_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
        result["statements"] = sorted(rows, key=lambda r: -r["cpu_seconds"])[:40]
        outside = {}  # per phase: CPU seconds spent outside the timed statements (Python)
        for row in rows:
            outside[row["phase"]] = outside.get(row["phase"], 0) + row["cpu_seconds"]
        result["cpu_outside_statements"] = {
            p["phase"]: round(p["cpu_seconds"] - outside.get(p["phase"], 0), 2) for p in phases.rows
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--stage", choices=sorted(BEFORE), default="resolve")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument(
        "--statements", action="store_true", help="also time every SQL statement of the stage"
    )
    parser.add_argument(
        "--statements-file", type=Path, help="write every timed statement here (JSON lines)"
    )
    parser.add_argument("--keep", type=Path, help="copy the DuckDB file after the stage here")
    parser.add_argument(
        "--where", type=int, default=0, metavar="N", help="the N code locations of highest RSS"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="write the stage's cProfile stats here"
    )
    args = parser.parse_args()
    config_path = prepare(args.customers, args.seed, args.out, clear_warehouse=False)
    warehouse = cached_warehouse(config_path, args.stage) if BEFORE[args.stage] else None
    result = run_stage(
        config_path,
        args.stage,
        warehouse,
        args.statements or bool(args.statements_file),
        args.statements_file,
        args.keep,
        args.where,
        args.profile,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
