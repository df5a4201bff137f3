"""The crosswalk's one-customer check looks at every record, whichever run wrote its rows."""

from __future__ import annotations

import shutil

import duckdb

from ccv.config import load_config
from ccv.warehouse import models

CHECK = "customer_xref_one_customer_per_record"


def failures(con: duckdb.DuckDBPyConnection) -> dict[str, models.CheckFailure]:
    return {f.check: f for f in models.run_checks(con, "core")}


def test_the_crosswalk_check_catches_a_record_in_two_clusters_from_any_run(
    published_sample, tmp_path
):
    db = tmp_path / "ccv.duckdb"
    shutil.copy(load_config(published_sample).resolve("warehouse/ccv.duckdb"), db)
    con = duckdb.connect(str(db))
    assert CHECK not in failures(con)

    # a record claimed by a second customer in a row of an earlier run: caught, and named
    ((source, record_id),) = con.execute(
        "select source, source_record_id from customer_xref "
        "where record_kind = 'customer' order by source, source_record_id limit 1"
    ).fetchall()
    con.execute(
        "insert into customer_xref select * replace ('C-other' as customer_id, "
        "'earlier' as run_id) from customer_xref "
        "where source = ? and source_record_id = ?",
        [source, record_id],
    )
    failure = failures(con)[CHECK]
    assert failure.row_count == 1
    row = dict(zip(failure.columns, failure.sample[0], strict=True))
    assert row == {"source": source, "source_record_id": record_id, "customers": 2, "xref_rows": 2}

    # a record of no customer: caught too
    con.execute(
        "delete from customer_xref where source = ? and source_record_id = ? "
        "and customer_id = 'C-other'",
        [source, record_id],
    )
    assert CHECK not in failures(con)
    con.execute(
        "update customer_xref set customer_id = null where source = ? and source_record_id = ?",
        [source, record_id],
    )
    failure = failures(con)[CHECK]
    assert failure.sample == [(source, record_id, 0, 1)]


def test_the_orders_key_check_catches_a_repeated_or_missing_key(published_sample, tmp_path):
    """orders_key_unique names a repeated key and a NULL key, with how many rows hold them."""
    db = tmp_path / "ccv.duckdb"
    shutil.copy(load_config(published_sample).resolve("warehouse/ccv.duckdb"), db)
    con = duckdb.connect(str(db))
    assert "orders_key_unique" not in failures(con)
    ((key,),) = con.execute("select min(order_key) from orders").fetchall()
    con.execute("insert into orders select * from orders where order_key = ?", [key])
    con.execute(
        "insert into orders select * replace (null as order_key) from orders "
        "where order_key = ? limit 1",
        [key],
    )
    failure = failures(con)["orders_key_unique"]
    assert failure.row_count == 2
    rows = sorted(failure.sample, key=lambda r: (r[0] is None, r[0]))
    assert rows == [(key, 2), (None, 1)]
