"""Staging models keep the latest delivered version of every record, whether it came once or
several times (sql/staging: only repeated keys are ranked; the rest pass straight through)."""

from __future__ import annotations

import datetime as dt

from ccv.ingest.load import ingest
from ccv.warehouse import models
from tests.conftest import make_config

CRM = {
    "name": "crm",
    "kind": "customers",
    "path": "drops/crm_*.csv",
    "format": "csv",
    "columns": {"source_record_id": "id", "first_name": "first", "updated_at": "upd"},
}
SHOP = {
    "name": "shop",
    "kind": "orders",
    "path": "drops/orders_*.csv",
    "format": "csv",
    "customer_source": "crm",
    "columns": {
        "order_id": "order",
        "customer_record_id": "customer",
        "ordered_at": "at",
        "status": "status",
        "net_amount": "net",
    },
}


def night(con, tmp_path, day: int, files: dict[str, str]) -> None:
    """Drop `files` into the glob folders and ingest them as the run of 2026-11-`day`."""
    (tmp_path / "drops").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "drops" / name).write_text(text, encoding="utf-8")
    config = make_config(tmp_path, CRM, SHOP)
    ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
    models.build(con, layers=("staging",))


def test_a_redelivered_order_keeps_its_latest_version_and_others_pass_through(con, tmp_path):
    head = "order,customer,at,status,net\n"
    night(
        con,
        tmp_path,
        1,
        {"orders_1.csv": head + "A,1,2026-10-30,completed,10\nB,1,2026-10-30,completed,20\n"},
    )
    night(
        con,
        tmp_path,
        2,
        {"orders_2.csv": head + "A,1,2026-10-30,returned,10\nC,2,2026-10-31,completed,5\n"},
    )
    rows = con.execute(
        "select order_id, status, net_amount, source_file like '%orders_2.csv' "
        "from stg_orders order by order_id"
    ).fetchall()
    assert [(r[0], r[1], float(r[2]), r[3]) for r in rows] == [
        ("A", "returned", 10.0, True),
        ("B", "completed", 20.0, False),
        ("C", "completed", 5.0, True),
    ]
    assert con.execute("select count(*) from raw_orders").fetchone() == (4,)


def test_the_newest_updated_at_wins_even_from_an_older_file(con, tmp_path):
    head = "id,first,upd\n"
    night(con, tmp_path, 1, {"crm_1.csv": head + "1,Ann,2026-10-05\n2,Bo,2026-10-01\n"})
    # night 2 re-sends Ann with an older update (a stale export) and Bo with a newer one
    night(con, tmp_path, 2, {"crm_2.csv": head + "1,Anne,2026-09-01\n2,Bob,2026-10-20\n"})
    rows = con.execute(
        "select source_record_id, first_name from stg_customers order by 1"
    ).fetchall()
    assert rows == [("1", "Ann"), ("2", "Bob")]
