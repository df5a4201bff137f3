"""Score an identity-resolution result against ground truth, for any linker (ccv, Splink...).

Why this shape: a benchmark must compare linkers on the same numbers, computed the same way,
at 1M records.  Enumerating record pairs is quadratic in cluster size (one over-merged
cluster of 50k records is already 1.25e9 pairs), so everything here comes from the
contingency table ``n_ij`` = records of true person ``i`` in predicted cluster ``j``, built
with one pandas ``groupby``:

* pairwise: ``TP = sum_ij C(n_ij, 2)``, true pairs ``= sum_i C(a_i, 2)``, predicted pairs
  ``= sum_j C(b_j, 2)`` (``a_i``/``b_j`` the row/column sums); precision ``TP / predicted``,
  recall ``TP / true``.  Pairwise numbers weigh big clusters quadratically, so they punish
  one giant wrong merge hard - exactly the failure that hurts a CRM most.
* B-cubed (per record, then averaged): precision ``sum_ij n_ij^2 / b_j / N``, recall
  ``sum_ij n_ij^2 / a_i / N``.  Linear in cluster size, so they show how many *records*
  are well placed and complement the pairwise view.
* counts: true and predicted clusters, over-merged predicted clusters (holding records of
  more than one true person) and split persons (records spread over several predicted
  clusters).

Conventions: the truth defines the records scored; a truth record missing from the
prediction counts as its own singleton cluster (a linker that drops records is not
rewarded), prediction rows unknown to the truth are ignored; both are reported.  With no
predicted pairs pairwise precision is 1.0 (nothing claimed, nothing wrong); with no true
pairs recall is 1.0.

CLI (Parquet or CSV, chosen by the file suffix)::

    python benchmarks/identity_score.py --truth T_truth.parquet --pred P.parquet [--json]
        [--truth-col person_id] [--pred-col cluster_id] [--id-col record_id]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Scores:
    records: int
    true_clusters: int
    pred_clusters: int
    true_pairs: int
    pred_pairs: int
    true_positive_pairs: int
    pair_precision: float
    pair_recall: float
    pair_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    over_merged_clusters: int
    split_persons: int
    missing_in_pred: int
    unknown_in_pred: int


def _pairs(sizes: pd.Series | np.ndarray) -> int:
    s = np.asarray(sizes, dtype=np.int64)
    return int((s * (s - 1) // 2).sum())


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def score(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    id_col: str = "record_id",
    truth_col: str = "person_id",
    pred_col: str = "cluster_id",
) -> Scores:
    """Compare ``truth`` (id -> person) with ``pred`` (id -> cluster); see the module doc."""
    t = truth[[id_col, truth_col]].rename(columns={id_col: "rid", truth_col: "t"})
    p = pred[[id_col, pred_col]].rename(columns={id_col: "rid", pred_col: "p"})
    t["rid"] = t["rid"].astype(str)
    p["rid"] = p["rid"].astype(str)
    if t["rid"].duplicated().any():
        raise ValueError("truth has duplicate record ids")
    if p["rid"].duplicated().any():
        raise ValueError("prediction assigns some record to more than one cluster")
    m = t.merge(p, on="rid", how="left", indicator=True)
    missing = int((m["_merge"] == "left_only").sum())
    unknown = int((~p["rid"].isin(t["rid"])).sum())
    # cluster ids as integer codes; each missing record becomes its own singleton cluster
    t_code = pd.factorize(m["t"])[0].astype(np.int64)
    p_code, uniques = pd.factorize(m["p"])
    p_code = p_code.astype(np.int64)
    lonely = p_code < 0
    p_code[lonely] = len(uniques) + np.arange(int(lonely.sum()))

    n = len(m)
    cells = pd.DataFrame({"t": t_code, "p": p_code}).groupby(["t", "p"]).size()
    nij = cells.to_numpy(np.int64)
    ti = cells.index.get_level_values("t").to_numpy()
    pj = cells.index.get_level_values("p").to_numpy()
    a = np.bincount(t_code)  # records per true person
    b = np.bincount(p_code)  # records per predicted cluster

    tp, true_pairs, pred_pairs = _pairs(nij), _pairs(a), _pairs(b)
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    sq = nij.astype(np.float64) ** 2
    b3p = float((sq / b[pj]).sum() / n) if n else 1.0
    b3r = float((sq / a[ti]).sum() / n) if n else 1.0
    return Scores(
        records=n,
        true_clusters=int((a > 0).sum()),
        pred_clusters=int((b > 0).sum()),
        true_pairs=true_pairs,
        pred_pairs=pred_pairs,
        true_positive_pairs=tp,
        pair_precision=precision,
        pair_recall=recall,
        pair_f1=_f1(precision, recall),
        bcubed_precision=b3p,
        bcubed_recall=b3r,
        bcubed_f1=_f1(b3p, b3r),
        over_merged_clusters=int((np.bincount(pj) > 1).sum()),
        split_persons=int((np.bincount(ti) > 1).sum()),
        missing_in_pred=missing,
        unknown_in_pred=unknown,
    )


def read_table(path: Path) -> pd.DataFrame:
    """Parquet, or CSV with every column as text (ids must not turn into numbers)."""
    if path.suffix.lower() in (".csv", ".txt"):
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    return pd.read_parquet(path)


def format_table(s: Scores) -> str:
    rows = [
        ("records", f"{s.records:,}"),
        ("true / predicted clusters", f"{s.true_clusters:,} / {s.pred_clusters:,}"),
        ("pairwise precision", f"{s.pair_precision:.4f}"),
        ("pairwise recall", f"{s.pair_recall:.4f}"),
        ("pairwise F1", f"{s.pair_f1:.4f}"),
        ("B-cubed precision", f"{s.bcubed_precision:.4f}"),
        ("B-cubed recall", f"{s.bcubed_recall:.4f}"),
        ("B-cubed F1", f"{s.bcubed_f1:.4f}"),
        ("true / predicted / correct pairs",
         f"{s.true_pairs:,} / {s.pred_pairs:,} / {s.true_positive_pairs:,}"),
        ("over-merged clusters", f"{s.over_merged_clusters:,}"),
        ("split persons", f"{s.split_persons:,}"),
        ("missing in pred / unknown in pred", f"{s.missing_in_pred:,} / {s.unknown_in_pred:,}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Pairwise and B-cubed scores of a clustering.")
    ap.add_argument("--truth", type=Path, required=True, help="record_id -> person_id")
    ap.add_argument("--pred", type=Path, required=True, help="record_id -> cluster_id")
    ap.add_argument("--id-col", default="record_id")
    ap.add_argument("--truth-col", default="person_id")
    ap.add_argument("--pred-col", default="cluster_id")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = ap.parse_args(argv)
    s = score(
        read_table(args.truth),
        read_table(args.pred),
        id_col=args.id_col,
        truth_col=args.truth_col,
        pred_col=args.pred_col,
    )
    print(json.dumps(asdict(s)) if args.json else format_table(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
