"""Term frequencies are frozen with the match parameters: counted when m/u are estimated, stored
as hashed counts, and reused with them, so a pair of unchanged records keeps its weight."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ccv.config import load_config
from ccv.identity.blocking import RecordKeys
from ccv.identity.resolve import LINK_WEIGHTS
from ccv.identity.term_counts import FrozenCounts, save_counts
from ccv.pipeline import run_nightly
from tests.conftest import make_project
from tests.test_incremental_identity import deliver, write_nights


def _records(first_names: list[str | None]) -> pd.DataFrame:
    n = len(first_names)
    text = pd.Series(first_names, dtype="str")
    return pd.DataFrame(
        {
            "std_first_name": text,
            "std_last_name": pd.Series(["smith"] * n, dtype="str"),
            "std_email": pd.Series([f"p{i}@example.org" for i in range(n)], dtype="str"),
            "std_phone": pd.Series([None] * n, dtype="str"),
            "std_birth_date": pd.to_datetime(["1980-02-01"] * n).astype("datetime64[us]"),
            "std_postcode": pd.Series(["AB1 2CD"] * n, dtype="str"),
        }
    )


def test_frozen_counts_look_up_values_and_count_unseen_ones_once():
    con = duckdb.connect()
    estimated_on = _records(["ann", "ann", "ann", "bob", "bob", "cyd", None, "dee"])
    save_counts(con, RecordKeys(estimated_on), "run-1")
    frozen = FrozenCounts.load(con, "run-1")
    assert frozen is not None and FrozenCounts.load(con, "run-0") is None

    # seven records had a first name: ann 3, bob 2; cyd and dee once; eve was never seen
    freq = frozen.frequencies("first_name", pa.array(["eve", "bob", "ann", "cyd"]))
    assert np.allclose(freq, [1 / 7, 2 / 7, 3 / 7, 1 / 7])
    # dates are looked up by the same text they were stored under
    _, dates = RecordKeys(estimated_on).codes("std_birth_date")
    assert np.allclose(frozen.frequencies("birth_date", dates), [1.0])
    # only values held twice or more are stored, and as hashes: no name, e-mail or phone
    stored = con.execute(
        "select comparison, count(value_hash) from match_tf group by all order by all"
    ).fetchall()
    assert dict(stored) == {
        "birth_date": 1,
        "email": 0,
        "first_name": 2,
        "last_name": 1,
        "phone": 0,
        "postcode": 1,
    }
    assert con.execute("select typeof(value_hash) from match_tf limit 1").fetchall() == [
        ("UBIGINT",)
    ]


def _probabilistic_weights(config_path) -> dict[tuple, float]:
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select left_source, left_record_id, right_source, right_record_id, match_weight "
            "from match_evidence where rule not in (select unnest(?)) "
            "and match_weight is not null",
            [list(LINK_WEIGHTS)],
        ).fetchall()
    return {tuple(r[:4]): r[4] for r in rows}


def _params(config_path) -> tuple:
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select params_source, params_run_id from match_params").fetchall()[0]


def test_reused_parameters_keep_the_weights_of_unchanged_pairs(tmp_path):
    config_path = make_project(tmp_path / "p")
    write_nights(config_path)
    for night in (1, 2):
        deliver(config_path, night)
        run_nightly(load_config(config_path))
    estimated = _params(config_path)
    before = _probabilistic_weights(config_path)
    deliver(config_path, 3)  # ~90 more CRM records: every value's share of them moves
    third = run_nightly(load_config(config_path)).resolve.work
    after = _probabilistic_weights(config_path)

    assert estimated[0] == "estimated" and third.params == "reused"
    assert _params(config_path) == ("reused", estimated[1])
    kept = set(before) & set(after)
    assert len(kept) > 50
    # links between records of both nights weigh exactly what they weighed: the term
    # frequencies are the estimate's, not tonight's
    assert all(before[k] == after[k] for k in kept)
