"""Speed-up of identity matching on a local Dask cluster: in-process vs 1 vs 2 worker processes.

    .venv/bin/python benchmarks/bench_scale_out.py --records 200000 [--partitions 8] [--out DIR]

Uses the identity benchmark data (`identity_data.py`, level medium, seed 1; generated into
`--out` when missing), standardises it once, then times `link_and_cluster` (block, compare,
estimate, score, cluster) and the pair comparison alone: once in this process, unsplit (what
`task_runner = "local"` runs), and once inside a Prefect flow on a `DaskTaskRunner` per worker
count, with the comparison mapped as `--partitions` Prefect tasks exactly as the nightly flow's
`resolve-on-dask` subflow does. The cluster is started and warmed up (workers import ccv) before
the clock starts; its start-up is printed separately. Every run must give the same clusters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow

from ccv.config import IdentityConfig, ScaleConfig
from ccv.identity.blocking import DEFAULT_RULES, candidate_pairs
from ccv.identity.partitions import LOCAL, Mapper, compare_pairs
from ccv.identity.resolve import link_and_cluster, standardize
from flows.scale_out import dask_task_runner, task_mapper, workers_report_here

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from identity_ccv import parse_birth_dates  # noqa: E402


@cache
def load(records: int, out: Path) -> pd.DataFrame:
    """Standardised benchmark records (generated on first use; cached: flows take no frames,
    Prefect sends flow parameters to its API)."""
    import identity_data

    stem = out / f"identity_medium_{records}_s1"
    if not stem.with_suffix(".parquet").exists():
        identity_data.main(["--records", str(records), "--seed", "1", "--out", str(out)])
    raw = pd.read_parquet(stem.with_suffix(".parquet"))
    raw = raw.rename(columns={"record_id": "source_record_id"})
    raw["birth_date"] = parse_birth_dates(raw)
    raw = raw.assign(record_kind="customer", ref_source=None, ref_record_id=None)
    return standardize(raw, IdentityConfig())


def timed(std: pd.DataFrame, mapper: Mapper) -> dict:
    """Wall seconds of the comparison alone and of the whole linking, and the cluster labels."""
    records = std.assign(record_idx=np.arange(len(std), dtype=np.int64))
    pairs, _ = candidate_pairs(records, DEFAULT_RULES, 50)
    start = time.perf_counter()
    compare_pairs(records, pairs, mapper)
    compare_s = time.perf_counter() - start
    start = time.perf_counter()
    labels, _, _ = link_and_cluster(std, IdentityConfig(), mapper)
    return {
        "pairs": len(pairs),
        "compare_s": round(compare_s, 2),
        "link_and_cluster_s": round(time.perf_counter() - start, 2),
        "labels": labels,
    }


@flow(name="bench-scale-out", validate_parameters=False)
def on_dask(records: int, out: Path, scale: ScaleConfig) -> dict:
    """`timed` with the comparison mapped as Prefect tasks onto this flow's Dask runner."""
    std = load(records, out)
    mapper = task_mapper(scale)
    start = time.perf_counter()
    warm = std.head(2000).assign(record_idx=np.arange(2000, dtype=np.int64))
    compare_pairs(warm, candidate_pairs(warm, DEFAULT_RULES, 50)[0], mapper)
    startup = time.perf_counter() - start
    return {"cluster_start_s": round(startup, 2), **timed(std, mapper)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args()

    std = load(args.records, args.out)
    results = {"local (in-process, unsplit)": timed(std, LOCAL)}
    for workers in args.workers:
        scale = ScaleConfig(task_runner="dask", dask_workers=workers, partitions=args.partitions)
        run = on_dask.with_options(task_runner=dask_task_runner(scale))
        with workers_report_here():
            results[f"dask, {workers} worker(s), {args.partitions} partitions"] = run(
                args.records, args.out, scale
            )
    reference = results["local (in-process, unsplit)"]["labels"]
    for name, result in results.items():
        assert np.array_equal(result.pop("labels"), reference), f"{name}: other clusters"
        print(name, json.dumps(result))
    print("load average (1, 5, 15 min):", os.getloadavg(), "cpus:", os.cpu_count())


if __name__ == "__main__":
    main()
