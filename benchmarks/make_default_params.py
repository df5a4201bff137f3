"""Estimate the default match parameters ccv ships for inputs too small to estimate their own.

    .venv/bin/python benchmarks/make_default_params.py [--records 50000] [--seed 11]

Runs blocking, comparison and EM on held-out benchmark data (`identity_data.py`, medium) and
writes `src/ccv/identity/default_match_params.json`. A seed other than the benchmark's (1) keeps
the scored benchmark honest.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from identity_ccv import _load, parse_birth_dates

from ccv.config import IdentityConfig
from ccv.identity.matching import DEFAULT_PARAMS_PATH, estimate_params
from ccv.identity.resolve import standardize

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    data = _load("identity_data")
    out = HERE / "out"
    stem = f"identity_medium_{args.records}_s{args.seed}"
    if not (out / f"{stem}.parquet").exists():
        data.main(
            [
                "--records",
                str(args.records),
                "--level",
                "medium",
                "--seed",
                str(args.seed),
                "--out",
                str(out),
            ]
        )
    records = pd.read_parquet(out / f"{stem}.parquet")
    records = records.rename(columns={"record_id": "source_record_id"})
    records["birth_date"] = parse_birth_dates(records)
    records = records.assign(record_kind="customer", ref_source=None, ref_record_id=None)
    std = standardize(records, IdentityConfig())
    params = estimate_params(std, np.arange(len(std)), max_block_size=50)
    params.meta = {"estimated_on": stem, "records": len(std)}
    params.save(DEFAULT_PARAMS_PATH)
    print(f"wrote {DEFAULT_PARAMS_PATH} (prior weight {params.prior_weight():+.2f})")


if __name__ == "__main__":
    main()
