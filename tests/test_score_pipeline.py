"""benchmarks/score_pipeline.py: the accuracy the docs quote for whole nights comes from it."""

from __future__ import annotations

import shutil

import duckdb

from ccv.config import load_config
from tests.conftest import load_benchmark

load_benchmark("identity_score")
score_pipeline = load_benchmark("score_pipeline")


def test_the_sample_night_scores_against_its_ground_truth(published_sample, tmp_path):
    warehouse = load_config(published_sample).resolve("warehouse/ccv.duckdb")
    truth = published_sample.parent / "data" / "sample" / "ground_truth.csv"
    result = score_pipeline.score(warehouse, truth)
    # every CRM record with one person id in the truth is scored
    con = duckdb.connect(str(warehouse), read_only=True)
    ((crm,),) = con.execute(
        "select count(*) from customer_xref where record_kind = 'customer'"
    ).fetchall()
    con.close()
    assert 0.95 * crm <= result["crm_records"] <= crm
    assert result["pairwise_precision"] > 0.95 and result["pairwise_recall"] > 0.9
    tiers = {t["tier"]: t for t in result["links_between_crm_records"]}
    assert tiers["probabilistic, strong"]["links"] > 50

    # one customer for every CRM record: every true pair is found, nearly every pair is wrong
    merged = tmp_path / "merged.duckdb"
    shutil.copy(warehouse, merged)
    con = duckdb.connect(str(merged))
    con.execute("update customer_xref set customer_id = 'C0' where record_kind = 'customer'")
    con.close()
    bad = score_pipeline.score(merged, truth)
    assert bad["pairwise_recall"] == 1.0 and bad["pairwise_precision"] < 0.01
