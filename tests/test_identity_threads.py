"""Identity steps that run side by side in threads give what a loop gives (issue 4).

Blocking rules, comparisons and u from random pairs run in threads (`ccv.identity.threads`);
the result must not depend on how many there are, and a key part asked for by several threads
at once must be encoded once.
"""

from __future__ import annotations

import threading

import duckdb
import pandas as pd
import pytest

from ccv.config import IdentityConfig
from ccv.identity import threads
from ccv.identity.blocking import DEFAULT_RULES, RecordKeys, candidate_pairs
from ccv.identity.comparisons import DEFAULT_COMPARISONS, compare
from ccv.identity.resolve import standardize
from ccv.identity.standalone import resolve_frame
from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    data, _ = load_benchmark("identity_data").generate(3000, "medium", seed=4)
    data = data.rename(columns={"record_id": "source_record_id"})
    data["birth_date"] = None  # each source has its own format; not needed here
    return data


def test_parallel_map_keeps_order_and_raises_the_first_error():
    assert threads.parallel_map(lambda x: x * x, range(50)) == [x * x for x in range(50)]

    def boom(x: int) -> int:
        if x == 7:
            raise ValueError("item 7")
        return x

    with pytest.raises(ValueError, match="item 7"):
        threads.parallel_map(boom, range(10))


def test_a_part_asked_for_by_many_threads_is_encoded_once(records, monkeypatch):
    std = standardize(records.assign(record_kind="customer"), IdentityConfig())
    keys = RecordKeys(std)
    calls = []
    encode = RecordKeys._encode

    def counting(self, part):
        calls.append(part)
        return encode(self, part)

    monkeypatch.setattr(RecordKeys, "_encode", counting)
    n = 8
    start, results = threading.Barrier(n), [None] * n

    def ask(i: int) -> None:
        start.wait()  # all threads ask at once
        results[i] = keys.codes("email_local(std_email_key)")

    workers = [threading.Thread(target=ask, args=(i,)) for i in range(n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(r is results[0] for r in results)
    # the expression and its argument, once each
    assert sorted(calls) == ["email_local(std_email_key)", "std_email_key"]


def test_pairs_levels_and_ids_do_not_depend_on_the_number_of_threads(records, monkeypatch):
    std = standardize(records.assign(record_kind="customer"), IdentityConfig())
    std = std.assign(record_idx=range(len(std)))

    def run():
        keys = RecordKeys(std)
        pairs, oversized = candidate_pairs(std, DEFAULT_RULES, 50, keys)
        levels = compare(std, pairs, DEFAULT_COMPARISONS, keys)
        return pairs, oversized, levels, resolve_frame(records, IdentityConfig())

    monkeypatch.setattr(threads, "workers", lambda n: max(1, min(n, 4)))
    threaded = run()
    monkeypatch.setattr(threads, "workers", lambda n: 1)
    looped = run()
    assert len(threaded[0]) > 1000  # enough pairs for the rules and comparisons to matter
    assert len(threaded[1]) > 0  # and a block over the cap, reported by its rule's thread
    for got, want in zip(threaded, looped, strict=True):
        assert got.equals(want)


def test_writes_beside_run_on_a_second_connection_and_are_done_when_the_block_ends(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table t (i integer)")
    caller, writer = threading.get_ident(), []

    def write(target):
        writer.append((threading.get_ident(), target is con))
        target.execute("insert into t select * from range(100000)")

    with threads.writes_beside(con) as submit:
        submit(write)
        submit(lambda target: target.execute("insert into t values (-1)"))
    assert con.execute("select count(*), min(i) from t").fetchall() == [(100001, -1)]
    assert writer and writer[0][0] != caller and not writer[0][1]


def test_writes_beside_raise_a_failed_write_and_the_blocks_own_error_first(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with (
        pytest.raises(duckdb.CatalogException, match="missing"),
        threads.writes_beside(con) as submit,
    ):
        submit(lambda target: target.execute("insert into missing values (1)"))
    # the block's own error is the one raised (the write's outcome is not)
    with (
        pytest.raises(RuntimeError, match="the block failed"),
        threads.writes_beside(con) as submit,
    ):
        submit(lambda target: target.execute("insert into missing values (1)"))
        raise RuntimeError("the block failed")
    assert con.execute("select 42").fetchall() == [(42,)]  # the connection is usable
