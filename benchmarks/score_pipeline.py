"""Score a warehouse's identity resolution against the sample generator's ground truth.

    .venv/bin/python benchmarks/score_pipeline.py WAREHOUSE.duckdb GROUND_TRUTH.csv [--json]

`identity_ccv.py` scores the resolver alone on the held-out benchmark data; this scores what a
night of the pipeline (`benchmarks/run.py`, `bench_stage.py --stage resolve --keep FILE`, or
`ccv run` on `data/sample/`) wrote: the CRM records of `customer_xref` against the
`ground_truth.csv` that `ccv.sample_data` writes beside its inputs. Pairwise precision and
recall (pairs of CRM records put in one customer / truly one person; counted by
`identity_score.py`, as for the held-out benchmark), and the links that
`match_evidence` holds by tier — deterministic rules, probabilistic links at or above
`strong` (default 0.999) and the weak ones below it — with how many join two different people.

Ground-truth rows of a record id that the generator planted twice (`planted_error =
'duplicate_id'`: two people exported under one account id, of which staging keeps one) are
left out: either person id is "right" for the one record kept, and counting them made
identical records look like wrong links (session 17: precision 0.979 with them, 0.993 without).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
from identity_score import score as score_clusters

DETERMINISTIC = ("email", "phone", "loyalty_id", "customer_record_id")


def score(warehouse: Path, truth: Path, strong: float = 0.999) -> dict:
    """Pairwise precision / recall of the CRM records (`identity_score.score` on the records
    both the crosswalk and the truth hold) and the links by tier."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute(
            """
            create temp table truth as
            select source, source_record_id, any_value(person_id) as person_id
            from read_csv(?, all_varchar = true)
            group by source, source_record_id
            having count(*) = 1
            """,
            [str(truth)],
        )
        crm = con.execute(
            """
            select x.source || ':' || x.source_record_id as record_id, t.person_id,
                x.customer_id as cluster_id
            from customer_xref as x
            inner join truth as t using (source, source_record_id)
            where x.record_kind = 'customer'
            """
        ).df()
        ((customers,),) = con.execute(
            "select count(distinct customer_id) from customer_xref"
        ).fetchall()
        deterministic = ", ".join(f"'{rule}'" for rule in DETERMINISTIC)
        tiers = con.execute(
            f"""
            select
                case when e.rule in ({deterministic}) then e.rule
                    when e.match_probability >= ? then 'probabilistic, strong'
                    else 'probabilistic, weak' end as tier,
                count(*) as links,
                count(*) filter (where l.person_id <> r.person_id) as wrong
            from match_evidence as e
            inner join truth as l
                on l.source = e.left_source and l.source_record_id = e.left_record_id
            inner join truth as r
                on r.source = e.right_source and r.source_record_id = e.right_record_id
            group by tier
            order by tier
            """,
            [strong],
        ).fetchall()
    finally:
        con.close()
    scores = score_clusters(crm[["record_id", "person_id"]], crm[["record_id", "cluster_id"]])
    return {
        "crm_records": scores.records,
        "customers": customers,
        "pairwise_precision": round(scores.pair_precision, 5),
        "pairwise_recall": round(scores.pair_recall, 5),
        "pairwise_f1": round(scores.pair_f1, 5),
        "bcubed_f1": round(scores.bcubed_f1, 5),
        "links_between_crm_records": [
            {"tier": tier, "links": links, "wrong": wrong} for tier, links, wrong in tiers
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--strong", type=float, default=0.999)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = score(args.warehouse, args.truth, args.strong)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key in (
        "crm_records",
        "customers",
        "pairwise_precision",
        "pairwise_recall",
        "pairwise_f1",
        "bcubed_f1",
    ):
        print(f"{key:<22} {result[key]}")
    for tier in result["links_between_crm_records"]:
        print(f"  {tier['tier']:<24} {tier['links']:>10,} links, {tier['wrong']:>8,} wrong")


if __name__ == "__main__":
    main()
