"""The crosswalk's one-customer check looks at the records the run wrote (the rest passed it when
their version was published), or at every record when no run is named."""

from __future__ import annotations

import shutil

import duckdb

from ccv.config import load_config
from ccv.warehouse import models


def failing(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f.check for f in models.run_checks(con, "core")}


def test_the_crosswalk_check_covers_the_rows_the_run_wrote(published_sample, tmp_path):
    db = tmp_path / "ccv.duckdb"
    shutil.copy(load_config(published_sample).resolve("warehouse/ccv.duckdb"), db)
    con = duckdb.connect(str(db))
    ((run_id,),) = con.execute("select max(run_id) from customer_xref").fetchall()
    check = "customer_xref_one_customer_per_record"
    con.execute(f"set variable run_id = '{run_id}'")
    assert check not in failing(con)

    # a record claimed by a second customer in a row the run wrote: caught
    con.execute(
        "create temp table twin as select * replace ('C-other' as customer_id) "
        "from customer_xref where record_kind = 'customer' limit 1"
    )
    con.execute("insert into customer_xref select * from twin")
    assert check in failing(con)
    # both rows kept from an earlier run (the version holding them passed): not looked at
    con.execute(
        "update customer_xref set run_id = 'earlier' from twin "
        "where customer_xref.source = twin.source "
        "and customer_xref.source_record_id = twin.source_record_id"
    )
    assert check not in failing(con)
    # ...unless no run is named: every record is checked
    con.execute("reset variable run_id")
    assert check in failing(con)
