"""Nights that each bring new order files end where one full rebuild of all files ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from ccv.config import load_config
from ccv.pipeline import run_nightly
from ccv.warehouse.models import SQL_DIR
from tests.conftest import make_project, night_without_report

NIGHTS = 3


def split_into_nights(config_path: Path) -> None:
    """Cut the two order files into NIGHTS dated drops read through globs."""
    data = config_path.parent / "data" / "sample"
    drops = data / "drops"
    drops.mkdir()
    for name, header in (("store_orders.csv", True), ("web_orders.jsonl", False)):
        lines = (data / name).read_text(encoding="utf-8").splitlines(keepends=True)
        head, rows = (lines[:1], lines[1:]) if header else ([], lines)
        size = -(-len(rows) // NIGHTS)
        stem, suffix = name.split(".")
        for night in range(NIGHTS):
            part = drops / f"{stem}_{night + 1}.{suffix}.later"
            part.write_text("".join(head + rows[night * size : (night + 1) * size]))
        (data / name).unlink()
    text = config_path.read_text()
    text = text.replace('"data/sample/store_orders.csv"', '"data/sample/drops/store_orders_*.csv"')
    text = text.replace('"data/sample/web_orders.jsonl"', '"data/sample/drops/web_orders_*.jsonl"')
    config_path.write_text(text)


def deliver(config_path: Path, night: int) -> None:
    drops = config_path.parent / "data" / "sample" / "drops"
    for later in drops.glob(f"*_{night}.*.later"):
        later.rename(later.with_suffix(""))


def outcome(config_path: Path) -> dict:
    """Customers as sets of source records, with their RFM and segments (ids may differ)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            """
            with members as (
                select
                    customer_id,
                    list(source || ':' || source_record_id order by source, source_record_id)
                        as records
                from customer_xref group by customer_id
            )
            select m.records, r.recency_days, r.frequency, r.monetary, r.rfm_segment,
                   l.loyalty_cell, l.loyalty_stage
            from members m
            left join rfm_scores r using (customer_id)
            left join loyalty_segments l using (customer_id)
            """
        ).fetchall()
    return {tuple(row[0]): row[1:] for row in rows}


def order_rows(config_path: Path) -> list[tuple]:
    """Every row of the core `orders`, `order_lines`, `purchase_days` and `customer_order_stats`
    with its customer as the set of source records (ids may differ)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        members = """
            select customer_id,
                   list(source || ':' || source_record_id order by source, source_record_id)
                       as records
            from customer_xref group by customer_id
        """
        orders = con.execute(
            f"select o.* exclude (customer_id), m.records from orders o "
            f"left join ({members}) m using (customer_id) order by o.order_key"
        ).fetchall()
        lines = con.execute("select * from order_lines order by order_line_key").fetchall()
        days = con.execute(
            f"select p.* exclude (customer_id), m.records from purchase_days p "
            f"left join ({members}) m using (customer_id)"
        ).fetchall()
        stats = con.execute(
            f"select s.* exclude (customer_id), m.records from customer_order_stats s "
            f"left join ({members}) m using (customer_id)"
        ).fetchall()
    return [tuple(map(str, row)) for row in orders + lines] + sorted(map(str, days + stats))


def customer_rows(config_path: Path) -> list[tuple]:
    """Every row of the core `customers` table, keyed by its customer's set of source records
    (ids may differ)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            """
            with members as (
                select customer_id,
                       list(source || ':' || source_record_id order by source, source_record_id)
                           as records
                from customer_xref group by customer_id
            )
            select m.records, c.* exclude (customer_id)
            from customers c left join members m using (customer_id)
            """
        ).fetchall()
    return sorted(tuple(map(str, row)) for row in rows)


def identity_rows(config_path: Path, weights: bool = False) -> dict[str, list[tuple]]:
    """identity_records, customer_xref and match_evidence, every column but run_id, each
    customer id replaced by its customer's set of source records (ids may differ); the
    evidence without its weights and probabilities unless `weights` (a night that reuses the
    match parameters weighs links with them, a rebuild re-estimates)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(
            """
            create temp table members as
            select customer_id,
                   list(source || ':' || source_record_id order by source, source_record_id)
                       as records
            from customer_xref group by customer_id
            """
        )
        weighed = [
            c
            for (c,) in con.execute(
                "select column_name from duckdb_columns() where table_name = 'match_evidence' "
                "and (column_name like '%weight' or column_name like '%probability')"
            ).fetchall()
        ]
        excluded = {
            "identity_records": [],
            "customer_xref": [],
            "match_evidence": [] if weights else weighed,
        }
        rows = {}
        for table, more in excluded.items():
            columns = ", ".join(["customer_id", "run_id", *more])
            rows[table] = sorted(
                map(
                    str,
                    con.execute(
                        f"select m.records, t.* exclude ({columns}) "
                        f"from {table} t left join members m using (customer_id)"
                    ).fetchall(),
                )
            )
        return rows


def rows_by_run(config_path: Path) -> dict[str, dict[str, int]]:
    """Per identity table written by key (and the consent events' crosswalk rows), how many
    rows each run last wrote."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    tables = {
        "identity_records": "identity_records",
        "customer_xref": "customer_xref",
        "match_evidence": "match_evidence",
        "consent crosswalk": "customer_xref where record_kind = 'consent'",
    }
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            name: dict(
                con.execute(f"select run_id, count(*) from {table} group by run_id").fetchall()
            )
            for name, table in tables.items()
        }


def updated_tables(config_path: Path) -> set[str]:
    """The incrementally kept tables the last night updated rather than rebuilt."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select model from model_state where updated").fetchall()
    return {model for (model,) in rows}


ORDER_TABLES = {
    "stg_orders",
    "stg_order_lines",
    "customer_xref",
    "orders",
    "order_lines",
    "purchase_days",
    "customer_order_stats",
}
CUSTOMER_TABLES = {
    "stg_customers",
    "stg_consents",
    "customer_attributes",
    "identity_records",
    "customers",
}


def test_incremental_nights_equal_a_full_rebuild(tmp_path):
    nightly = make_project(tmp_path / "nightly")
    split_into_nights(nightly)
    for night in range(1, NIGHTS + 1):
        deliver(nightly, night)
        summary = night_without_report(load_config(nightly))
        for table, runs in rows_by_run(nightly).items():
            # night 1 writes every row; later nights only the rows of records they changed
            # (no consent event changes on these nights: none of theirs)
            tonight, total = runs.get(summary.run_id, 0), sum(runs.values())
            fewest = 0 if table == "consent crosswalk" else 1
            assert (tonight == total) if night == 1 else (fewest <= tonight < total), table
        # each night loads only the drops it had not seen
        loaded = [f for f in summary.files if f.status == "loaded"]
        assert {Path(f.source_file).name for f in loaded if "drops" in f.source_file} == {
            f"store_orders_{night}.csv",
            f"web_orders_{night}.jsonl",
        }
        # night 1 builds the order tables; later nights update them by key
        assert updated_tables(nightly) == (set() if night == 1 else ORDER_TABLES | CUSTOMER_TABLES)
    full = tmp_path / "full"
    shutil.copytree(nightly.parent / "data", full / "data")
    shutil.copy(nightly, full / "ccv.toml")
    run_nightly(load_config(full / "ccv.toml"), full_refresh=True)

    assert outcome(nightly) == outcome(full / "ccv.toml")
    assert order_rows(nightly) == order_rows(full / "ccv.toml")
    assert customer_rows(nightly) == customer_rows(full / "ccv.toml")
    # the identity tables written by key hold a full rebuild's rows
    assert identity_rows(nightly) == identity_rows(full / "ccv.toml")


LINES_SOURCE = """
[[sources]]
name = "web_lines"
kind = "order_lines"
path = "data/sample/web_lines.csv"
format = "csv"
order_source = "web_orders"

[sources.columns]
order_id = "order"
sku = "sku"
category = "category"
quantity = "qty"
line_amount = "amount"
"""


def order_stats(config_path: Path) -> tuple[list[tuple], list[tuple]]:
    """`customer_order_stats` as the last night left it, and as its SQL computes it from
    scratch on the same warehouse (the night's as-of date)."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    body = (SQL_DIR / "core" / "customer_order_stats.sql").read_text(encoding="utf-8")
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(
            "set variable as_of_date = (select as_of_date from runs order by started_at desc "
            "limit 1)"
        )
        kept = con.execute("select * from customer_order_stats order by customer_id").fetchall()
        rebuilt = con.execute(f"select * from ({body}) order by customer_id").fetchall()
    return kept, rebuilt


def test_order_stats_follow_re_sent_lines_and_a_moving_as_of_date(tmp_path):
    """customer_order_stats is kept by customer: a night recomputes the customers whose
    orders or order lines changed and those whose orders the as-of date let in or out, and
    ends where computing it from scratch ends."""
    config = make_project(tmp_path / "p")
    lines = config.parent / "data" / "sample" / "web_lines.csv"
    lines.write_text("order,sku,category,qty,amount\nW1000002,SH-9703,Shoes,1,42.50\n")
    config.write_text(config.read_text() + LINES_SOURCE)
    night_without_report(load_config(config))
    db = load_config(config).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        # the customer with the most completed web orders, and those orders
        ((customer, orders, favourite),) = con.execute(
            "select o.customer_id, list(o.order_id order by o.order_id), "
            "any_value(s.favourite_category) from orders o "
            "join customer_order_stats s using (customer_id) "
            "where o.channel = 'web' and o.status = 'completed' "
            "group by o.customer_id order by count(*) desc, o.customer_id limit 1"
        ).fetchall()
        ((median_day,),) = con.execute(
            "select cast(quantile_disc(ordered_on, 0.5) as varchar) from orders"
        ).fetchall()
    assert favourite != "Garden"

    # night 2: the lines file is re-sent with new lines for that customer's orders only
    lines.write_text(
        "order,sku,category,qty,amount\n"
        + "".join(f"{order},GD-0001,Garden,1,9.99\n" for order in orders)
    )
    night_without_report(load_config(config))
    kept, rebuilt = order_stats(config)
    assert kept == rebuilt
    assert dict((row[0], row[-1]) for row in kept)[customer] == "Garden"
    assert "customer_order_stats" in updated_tables(config)
    after_lines = kept

    # nights 3 and 4: no new file; the as-of date moves back to the middle of the orders,
    # then forward again
    text = config.read_text()
    config.write_text(text.replace('as_of = "latest_order"', f'as_of = "{median_day}"'))
    night_without_report(load_config(config))
    kept, rebuilt = order_stats(config)
    assert kept == rebuilt
    assert "customer_order_stats" in updated_tables(config)
    assert len(kept) < len(after_lines)  # customers whose first order is later drop out

    config.write_text(text)
    night_without_report(load_config(config))
    kept, rebuilt = order_stats(config)
    assert kept == rebuilt == after_lines
    assert "customer_order_stats" in updated_tables(config)
