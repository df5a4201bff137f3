"""Tests for the identity-resolution benchmark tools (issue 4).

The scorer decides which linker "wins", so it is pinned on tiny clusterings whose scores
can be checked by hand (the arithmetic is in the comments).  The generator is pinned on
its contract: deterministic per seed, truth for every record, the promised share of
persons with several records, and levels that really differ in how dirty they are.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_benchmark

ids = load_benchmark("identity_data")
isc = load_benchmark("identity_score")


def frames(truth: dict[str, str], pred: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = pd.DataFrame({"record_id": list(truth), "person_id": list(truth.values())})
    p = pd.DataFrame({"record_id": list(pred), "cluster_id": list(pred.values())})
    return t, p


# truth: P1 = {a, b, c}, P2 = {d, e}, P3 = {f}  ->  true pairs = C(3,2) + C(2,2) = 3 + 1 = 4
TRUTH = {"a": "P1", "b": "P1", "c": "P1", "d": "P2", "e": "P2", "f": "P3"}


def test_perfect_clustering_scores_one():
    t, p = frames(TRUTH, {k: f"c{v}" for k, v in TRUTH.items()})  # other labels, same groups
    s = isc.score(t, p)
    assert (s.pair_precision, s.pair_recall, s.pair_f1) == (1.0, 1.0, 1.0)
    assert (s.bcubed_precision, s.bcubed_recall, s.bcubed_f1) == (1.0, 1.0, 1.0)
    assert (s.true_clusters, s.pred_clusters) == (3, 3)
    assert (s.over_merged_clusters, s.split_persons) == (0, 0)
    assert (s.true_pairs, s.pred_pairs, s.true_positive_pairs) == (4, 4, 4)


def test_all_in_one_cluster():
    t, p = frames(TRUTH, dict.fromkeys(TRUTH, "X"))
    s = isc.score(t, p)
    # predicted pairs = C(6,2) = 15, all 4 true pairs among them: precision 4/15, recall 1
    assert s.pred_pairs == 15
    assert s.pair_precision == pytest.approx(4 / 15)
    assert s.pair_recall == 1.0
    assert s.pair_f1 == pytest.approx(2 * (4 / 15) / (4 / 15 + 1))
    # B-cubed precision: P1 records 3/6 each, P2 2/6, P3 1/6 -> (3*3 + 2*2 + 1*1)/6/6 = 14/36
    assert s.bcubed_precision == pytest.approx(14 / 36)
    assert s.bcubed_recall == 1.0
    assert (s.pred_clusters, s.over_merged_clusters, s.split_persons) == (1, 1, 0)


def test_all_singletons():
    t, p = frames(TRUTH, {k: k for k in TRUTH})
    s = isc.score(t, p)
    assert s.pred_pairs == 0
    assert s.pair_precision == 1.0  # nothing claimed, nothing wrong (documented convention)
    assert s.pair_recall == 0.0 and s.pair_f1 == 0.0
    # B-cubed recall: P1 records 1/3 each, P2 1/2 each, P3 1 -> (1 + 1 + 1)/6 = 0.5
    assert s.bcubed_precision == 1.0
    assert s.bcubed_recall == pytest.approx(0.5)
    assert (s.over_merged_clusters, s.split_persons) == (0, 2)


def test_partial_overlap_by_hand():
    # truth P1 = {a,b,c}, P2 = {d,e}; predicted X = {a,b}, Y = {c,d,e}
    # n_ij: (P1,X)=2 (P1,Y)=1 (P2,Y)=2 -> TP = 1 + 0 + 1 = 2; true pairs 3+1 = 4;
    # predicted pairs 1+3 = 4 -> precision = recall = 0.5
    # B-cubed precision: a,b 2/2; c 1/3; d,e 2/3 -> (2 + 1/3 + 4/3)/5 = 11/15
    # B-cubed recall:    a,b 2/3; c 1/3; d,e 2/2 -> (4/3 + 1/3 + 2)/5 = 11/15
    truth = {"a": "P1", "b": "P1", "c": "P1", "d": "P2", "e": "P2"}
    t, p = frames(truth, {"a": "X", "b": "X", "c": "Y", "d": "Y", "e": "Y"})
    s = isc.score(t, p)
    assert (s.true_positive_pairs, s.true_pairs, s.pred_pairs) == (2, 4, 4)
    assert s.pair_precision == s.pair_recall == s.pair_f1 == pytest.approx(0.5)
    assert s.bcubed_precision == pytest.approx(11 / 15)
    assert s.bcubed_recall == pytest.approx(11 / 15)
    assert (s.over_merged_clusters, s.split_persons) == (1, 1)


def test_missing_records_are_singletons_and_unknown_ignored():
    # c is missing from the prediction -> its own cluster; z is not in the truth -> ignored
    t, p = frames(TRUTH, {"a": 1, "b": 1, "d": 2, "e": 2, "f": 3, "z": 1})
    s = isc.score(t, p)
    assert (s.missing_in_pred, s.unknown_in_pred, s.records) == (1, 1, 6)
    assert s.pair_precision == 1.0
    assert s.pair_recall == pytest.approx(2 / 4)  # found a-b and d-e, missed a-c and b-c
    assert s.split_persons == 1


def test_duplicate_prediction_rows_rejected():
    t, _ = frames(TRUTH, {})
    p = pd.DataFrame({"record_id": ["a", "a"], "cluster_id": [1, 2]})
    with pytest.raises(ValueError, match="more than one cluster"):
        isc.score(t, p)


def test_cli_json(tmp_path, capsys):
    t, p = frames(TRUTH, dict.fromkeys(TRUTH, "X"))
    t.to_parquet(tmp_path / "truth.parquet")
    p.to_csv(tmp_path / "pred.csv", index=False)
    isc.main(["--truth", str(tmp_path / "truth.parquet"), "--pred", str(tmp_path / "pred.csv"),
              "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["pair_precision"] == pytest.approx(4 / 15) and out["pair_recall"] == 1.0
    isc.main(["--truth", str(tmp_path / "truth.parquet"), "--pred", str(tmp_path / "pred.csv")])
    assert "pairwise F1" in capsys.readouterr().out


# --------------------------------------------------------------------------- generator

N = 3000


def test_generator_is_deterministic_and_truth_is_complete():
    d1, t1 = ids.generate(N, "medium", seed=5)
    d2, t2 = ids.generate(N, "medium", seed=5)
    pd.testing.assert_frame_equal(d1, d2)
    pd.testing.assert_frame_equal(t1, t2)
    d3, _ = ids.generate(N, "medium", seed=6)
    assert not d1.equals(d3)
    assert list(d1.columns) == ids.COLUMNS
    assert len(d1) == N and d1["record_id"].is_unique
    assert list(t1["record_id"]) == list(d1["record_id"])
    assert t1["person_id"].notna().all()
    assert set(d1["source"]) == {"crm_a", "crm_b", "crm_c"}
    sizes = t1["person_id"].value_counts()
    assert 0.25 < (sizes > 1).mean() < 0.35  # ~30 % of persons have 2+ records
    assert sizes.max() <= 5 and (sizes >= 3).any()


def test_levels_differ_in_corruption():
    dirt = ids.FLAGS["typo"] | ids.FLAGS["ocr"] | ids.FLAGS["unicode_junk"]
    rates, missing = [], []
    for level in ("easy", "medium", "hard"):
        data, truth = ids.generate(N, level, seed=2)
        rates.append(float(((truth["noise"] & dirt) != 0).mean()))
        missing.append(float(data[["email", "phone", "birth_date"]].isna().mean().mean()))
    assert rates[0] < rates[1] < rates[2]
    assert missing[0] < missing[1] < missing[2]
    assert rates[2] > 2 * rates[0]


def test_source_habits_and_dirt_are_visible():
    data, truth = ids.generate(N, "hard", seed=1)
    b = data[data["source"] == "crm_b"]
    assert b["first_name"].isna().all() and b["full_name"].str.contains(",").mean() > 0.9
    assert b["birth_date"].dropna().str.match(r"^\d\d/\d\d/\d{4}$").all()
    a = data[data["source"] == "crm_a"]
    assert a["birth_date"].dropna().str.match(r"^\d{4}-\d\d-\d\d$").all()
    c = data[data["source"] == "crm_c"]
    assert c["email"].dropna().str.contains(r"\*\*\*@").any()
    assert c["loyalty_id"].notna().all()
    text = "".join(data["full_name"].dropna()) + "".join(data["last_name"].dropna())
    assert any(ch in text for ch in "\u200b\ufeff\u00a0\u0301") or any(
        0xFF01 <= ord(ch) <= 0xFF5E for ch in text
    )
    assert data["phone"].dropna().str.contains("E+", regex=False).any()
    # households and namesakes exist: shared e-mails across persons, shared names
    m = data.merge(truth, on="record_id")
    per_email = m.dropna(subset=["email"]).groupby("email")["person_id"].nunique()
    assert (per_email > 1).any()


def test_corruptions_are_deterministic_functions():
    assert ids.ocr("Robert", 0.0, 0.0) != "Robert"
    assert ids.typo("Smith", 0.5, 0.1) != "Smith"
    assert ids.unicode_junk("Smith", 0.6, 0.0) == "Ｓｍｉｔｈ"
    assert ids.typo("ab", 0.5, 0.5) == "ab"  # too short to slip
    assert np.array_equal(ids._rng(1, "x").random(3), ids._rng(1, "x").random(3))


def test_write_parquet_all_text(tmp_path):
    data, truth = ids.generate(200, "easy", seed=1)
    paths = ids.write(data, truth, tmp_path, "t", csv=True, per_source_csv=True)
    back = pd.read_parquet(paths[0])
    assert list(back.columns) == ids.COLUMNS and len(back) == 200
    assert all(pd.api.types.is_string_dtype(back[c]) for c in back.columns)
    assert pd.read_parquet(paths[1])["record_id"].tolist() == data["record_id"].tolist()
    assert all(path.exists() for path in paths)
    parts = [pd.read_csv(tmp_path / f"t_{s}.csv", dtype=str) for s in ("crm_a", "crm_b", "crm_c")]
    assert sum(len(part) for part in parts) == 200
