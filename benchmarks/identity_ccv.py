"""Score ccv's identity resolution on the held-out benchmark data (`identity_data.py`).

    .venv/bin/python benchmarks/identity_ccv.py --records 200000 --level medium [--seed 1]

Generates (or reuses) the data set, parses each source's birth-date format as a source mapping
would (`crm_a` ISO, `crm_b` day-first, `crm_c` `07-Mar-1984`), resolves every record with the
same code as `ccv resolve` and the nightly run, and prints pairwise and cluster metrics with
wall time and peak memory of the resolution alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from ccv.config import IdentityConfig
from ccv.identity.standalone import resolve_frame

HERE = Path(__file__).resolve().parent
BIRTH_DATE_FORMATS = {"crm_a": "%Y-%m-%d", "crm_b": "%d/%m/%Y", "crm_c": "%d-%b-%Y"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def parse_birth_dates(records: pd.DataFrame) -> pd.Series:
    """ISO birth dates, each source parsed with its own format (NA where it does not parse)."""
    out = pd.Series(pd.NaT, index=records.index, dtype="datetime64[ns]")
    for source, fmt in BIRTH_DATE_FORMATS.items():
        rows = records["source"] == source
        out[rows] = pd.to_datetime(records.loc[rows, "birth_date"], format=fmt, errors="coerce")
    return out.dt.strftime("%Y-%m-%d")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--level", default="medium", choices=["easy", "medium", "hard"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--loyalty-guard", action="store_true")
    parser.add_argument("--match-probability", type=float, default=0.9)
    parser.add_argument("--strong-match-probability", type=float, default=0.999)
    args = parser.parse_args()

    data, scorer = _load("identity_data"), _load("identity_score")
    stem = f"identity_{args.level}_{args.records}_s{args.seed}"
    path, truth_path = args.out / f"{stem}.parquet", args.out / f"{stem}_truth.parquet"
    if not path.exists():
        data.main(
            [
                "--records",
                str(args.records),
                "--level",
                args.level,
                "--seed",
                str(args.seed),
                "--out",
                str(args.out),
            ]
        )
    records = pd.read_parquet(path)
    records = records.rename(columns={"record_id": "source_record_id"})
    records["birth_date"] = parse_birth_dates(records)

    identity = IdentityConfig(
        guards={"distinct_loyalty_ids": args.loyalty_guard},
        match_probability=args.match_probability,
        strong_match_probability=args.strong_match_probability,
    )
    started = time.perf_counter()
    customer_id = resolve_frame(records, identity)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    prediction = pd.DataFrame({"record_id": records["source_record_id"], "cluster_id": customer_id})
    scores = scorer.score(pd.read_parquet(truth_path), prediction)
    print(scorer.format_table(scores))
    print(
        json.dumps(
            {"records": len(records), "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb)}
        )
    )


if __name__ == "__main__":
    main()
