"""Benchmark the full nightly run at a given size: per-stage wall time, peak memory, and the floor.

    .venv/bin/python benchmarks/run.py --customers 100000 [--seed 7] [--out benchmarks/out]

Inputs are made by the sample generator (`ccv.sample_data.generate`; persons duplicated across
two CRMs, scaled to issue 8's volume: ~10 orders and ~1/3 survey answer per customer, so 1M
customers bring ~10M orders and ~330k surveys) and cached under `--out/<customers>-o…/`. The run
goes through `ccv.pipeline` exactly as the nightly flow does, report included (without Prefect's
API server, whose start-up is a constant). Each stage reports wall and CPU seconds (user +
system, all threads), and the run the load average before and after it. The *floor* is the time
DuckDB needs just to scan every input once; the ratio run/floor says how much the pipeline costs
beyond reading its data. Peak memory is the whole process's resident set, sampled every 50 ms,
overall and per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import duckdb

from ccv import pipeline
from ccv.config import load_config
from ccv.sample_data import generate

ROOT = Path(__file__).resolve().parents[1]


class PeakRSS:
    """Samples this process's resident memory in a thread; `.peak_mb` after `stop()`, and the
    peak since the last call of `take_window_peak_mb()` (per stage or phase)."""

    def __init__(self, every: float = 0.05):
        self.every, self.peak_kb, self.window_kb, self.last_kb = every, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                kb = self.last_kb = int(line.split()[1])
                self.peak_kb, self.window_kb = max(self.peak_kb, kb), max(self.window_kb, kb)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.every)

    def take_window_peak_mb(self) -> float:
        """Peak RSS since the previous call (or the start), in MB; starts a new window."""
        self._sample()
        peak, self.window_kb = self.window_kb, 0
        return peak / 1024

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def prepare(
    customers: int,
    seed: int,
    out: Path,
    orders_per_customer: float = 10.0,
    surveys_per_customer: float = 1 / 3,
    clear_warehouse: bool = True,
) -> Path:
    """A project folder with generated inputs and the sample config; reused when present.
    `clear_warehouse` removes the warehouse an earlier run left there."""
    project = out / f"{customers}-o{orders_per_customer:g}-s{surveys_per_customer:.2f}"
    data = project / "data" / "sample"
    if not (data / "ground_truth.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        generate(
            data,
            seed=seed,
            persons=customers,
            orders_per_person=orders_per_customer,
            surveys_per_person=surveys_per_customer,
        )
        seconds = time.perf_counter() - started
        print(f"generated inputs for {customers:,} persons in {seconds:.1f} s")
    shutil.copy(ROOT / "ccv.toml", project / "ccv.toml")
    if clear_warehouse:
        shutil.rmtree(project / "warehouse", ignore_errors=True)
    return project / "ccv.toml"


def floor_seconds(config_path: Path) -> float:
    """Time for DuckDB to scan every input file once (count rows)."""
    config = load_config(config_path)
    con = duckdb.connect()
    started = time.perf_counter()
    for source in config.sources:
        path = str(config.resolve(source.path))
        if source.format == "csv":
            delim = source.csv.delimiter.replace("'", "''")
            sql = f"select count(*) from read_csv('{path}', delim = '{delim}', all_varchar = true)"
        elif source.format == "jsonl":
            sql = f"select count(*) from read_json_objects('{path}')"
        else:
            sql = f"select count(*) from read_parquet('{path}')"
        con.execute(sql).fetchone()
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads, DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(config_path: Path, full_refresh: bool = True) -> dict:
    """One nightly run, timed per stage (wall and CPU seconds), with what identity resolution
    computed and the load average around it: on a shared 2-core machine other processes
    stretch wall times, while CPU time stays comparable between runs."""
    config = load_config(config_path)
    # nights run a day apart: whatever the previous step left in the page cache unwritten (the
    # last night's warehouse, a restored state, generated inputs) is flushed before timing, or
    # this night's copy of the warehouse competes with that writeback
    os.sync()
    times: dict[str, float] = {}
    cpu: dict[str, float] = {}
    peaks: dict[str, int] = {}
    load_before = os.getloadavg()
    with PeakRSS() as memory:
        total, total_cpu = time.perf_counter(), cpu_seconds()
        with pipeline.run_context(config, full_refresh=full_refresh) as nightly:
            for name, stage in (
                ("ingest", lambda: pipeline.ingest_stage(nightly, config)),
                ("resolve", lambda: pipeline.resolve_stage(nightly, config)),
                ("build", lambda: pipeline.build_stage(nightly, config)),
                ("publish", lambda: pipeline.publish_stage(nightly, config)),
                ("report", lambda: pipeline.report_stage(nightly)),
            ):
                started, started_cpu = time.perf_counter(), cpu_seconds()
                memory.take_window_peak_mb()
                result = stage()
                peaks[name] = round(memory.take_window_peak_mb())
                times[name] = time.perf_counter() - started
                cpu[name] = round(cpu_seconds() - started_cpu, 2)
                if name == "resolve":
                    work = result.work.__dict__
        times["total"] = time.perf_counter() - total
        cpu["total"] = round(cpu_seconds() - total_cpu, 2)
    return {
        "seconds": times,
        "cpu_seconds": cpu,
        "peak_rss_mb": round(memory.peak_mb),
        "stage_peak_rss_mb": peaks,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "resolve": work,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--orders-per-customer", type=float, default=10.0)
    parser.add_argument("--surveys-per-customer", type=float, default=1 / 3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    args = parser.parse_args()
    config_path = prepare(
        args.customers, args.seed, args.out, args.orders_per_customer, args.surveys_per_customer
    )
    floor = floor_seconds(config_path)
    result = run(config_path)
    result |= {"customers": args.customers, "floor_seconds": round(floor, 2)}
    result["ratio_to_floor"] = round(result["seconds"]["total"] / floor, 1)
    result["seconds"] = {k: round(v, 2) for k, v in result["seconds"].items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
