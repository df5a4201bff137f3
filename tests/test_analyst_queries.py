"""Every ```sql block of the README's Analytics section runs and returns rows.

The marts are built the way the pipeline builds them (customer_value, marts, snapshot; a month
later again) on a small generated shop: 120 customers with varied order rhythms, two stores and
the web, categorised order lines and survey answers, so that every example has something to show.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from test_marts import add_customers, add_orders, add_responses, build_marts, new_con

from ccv.analytics.segment_history import snapshot_segments

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Analytics: how each value is computed"
AS_OF = date(2025, 6, 30)
PREVIOUS_RUN = AS_OF - timedelta(days=30)


def analytics_sql_blocks() -> list[str]:
    """The ```sql blocks between the Analytics heading and the next level-2 heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else None]
    return re.findall(r"^```sql\n(.*?)^```", section, flags=re.M | re.S)


def small_shop() -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(11)
    con = new_con(as_of=PREVIOUS_RUN)
    ids = [f"c{i:03d}" for i in range(120)]
    add_customers(con, *ids)
    orders, lines, responses = [], [], []
    categories = ["books", "toys", "games", "music"]
    for n, cid in enumerate(ids[:100]):  # the last 20 are prospects
        rate = rng.gamma(0.8, 1 / 40)  # purchases per day
        stop = AS_OF - timedelta(days=int(rng.integers(0, 500)))  # some stopped buying
        day = AS_OF - timedelta(days=int(rng.integers(60, 700)))
        k = 0
        while day <= stop:
            channel = "store" if rng.random() < 0.4 else "web"
            amount = f"{rng.gamma(4, 10):.2f}"
            status = "completed" if rng.random() < 0.93 else "cancelled"
            oid = f"{cid}-{k}"
            orders.append((cid, oid, day, status, amount, channel))
            source = "web_shop" if channel == "web" else "pos"
            lines.append([f"{source}:{oid}", oid, source, categories[(n + k % 2) % 4], amount,
                          channel, status])  # fmt: skip
            k += 1
            day += timedelta(days=max(1, int(rng.exponential(1 / rate))))
        if rng.random() < 0.6:
            responses.append((cid, f"s-{cid}", datetime(2025, 5, 1, 9), int(rng.integers(0, 11)),
                              None))  # fmt: skip
    add_orders(con, *orders)
    con.execute(
        "update orders set store_id = 'S02' where channel = 'store' and hash(order_id) % 3 = 0"
    )
    con.executemany(
        "insert into order_lines (order_line_key, order_key, order_id, line_number, sku, "
        "product_name, category, quantity, unit_price, line_amount, channel, status) "
        "values (? || ':1', ?, ?, 1, 'SKU', 'item', ?, 1, ?, ?, ?, ?)",
        [[key, key, oid, cat, amount, amount, ch, status] for key, oid, _, cat, amount, ch, status
         in lines],
    )  # fmt: skip
    add_responses(con, *responses)
    # last month's run, then this run: the pipeline's order of steps
    build_marts(con)
    snapshot_segments(con, PREVIOUS_RUN)
    con.execute("set variable as_of_date = ?", [AS_OF])
    build_marts(con)
    return con


@pytest.fixture(scope="module")
def shop() -> duckdb.DuckDBPyConnection:
    con = small_shop()
    yield con
    con.close()


def test_the_readme_has_analyst_queries():
    assert len(analytics_sql_blocks()) >= 4


def test_the_small_shop_fits_the_clv_models(shop):
    # otherwise the CLV examples would only ever see NULLs
    assert shop.execute(
        "select bool_or(model_fitted), bool_or(spend_model_fitted) from customer_value"
    ).fetchone() == (True, True)
    assert shop.execute("select count(*) from segment_moves").fetchone()[0] > 0


@pytest.mark.parametrize("block", analytics_sql_blocks(), ids=lambda b: b.splitlines()[0][:60])
def test_readme_query_runs_and_returns_rows(shop, block):
    statements = shop.extract_statements(block)
    assert statements
    for statement in statements:
        result = shop.execute(statement.query).fetchall()
        assert result, f"no rows from:\n{statement.query}"
