"""Staging models keep the latest delivered version of every record, whether it came once or
several times (sql/staging: only repeated keys are ranked; the rest pass straight through)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re

import duckdb
import pytest

from ccv.ingest.load import ingest
from ccv.reporting import markdown_summary
from ccv.warehouse import models
from tests.conftest import WEB, make_config

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


def test_of_two_files_loaded_in_one_run_the_later_by_number_wins(con, tmp_path):
    """orders_9.csv and orders_10.csv arrive in one run (one load time): orders_10.csv is the
    later delivery (natural order, not name order), so its version of order A is staged."""
    head = "order,customer,at,status,net\n"
    night(
        con,
        tmp_path,
        1,
        {
            "orders_9.csv": head + "A,1,2026-10-30,completed,10\n",
            "orders_10.csv": head + "A,1,2026-10-30,returned,10\n",
        },
    )
    staged = con.execute("select status, source_file from stg_orders").fetchall()
    assert staged == [("returned", "drops/orders_10.csv")]


def test_the_newest_updated_at_wins_even_from_an_older_file(con, tmp_path):
    head = "id,first,upd\n"
    night(con, tmp_path, 1, {"crm_1.csv": head + "1,Ann,2026-10-05\n2,Bo,2026-10-01\n"})
    # night 2 re-sends Ann with an older update (a stale export) and Bo with a newer one
    night(con, tmp_path, 2, {"crm_2.csv": head + "1,Anne,2026-09-01\n2,Bob,2026-10-20\n"})
    rows = con.execute(
        "select source_record_id, first_name from stg_customers order by 1"
    ).fetchall()
    assert rows == [("1", "Ann"), ("2", "Bob")]


WEB_DROPS = WEB | {
    "path": "drops/web_*.jsonl",
    "lines_from": "items",
    "line_columns": {"sku": "sku", "quantity": "qty", "unit_price": "price"},
}


def _web_file(rng: random.Random, night_no: int, ids: list[int]) -> str:
    """A JSON-lines drop: orders `ids` with 0-3 items each (this night's versions)."""
    lines = []
    for i in ids:
        items = [
            {"sku": f"S{rng.randrange(9)}", "qty": rng.randrange(1, 4), "price": 2.5}
            for _ in range(rng.randrange(4))
        ]
        status = rng.choice(["completed", "returned", "cancelled"])
        record = {
            "id": f"W{i}",
            "at": f"2026-10-{night_no:02d}T10:00:00Z",
            "status": status,
            "total": 10 + night_no,
            "items": items,
        }
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def test_a_resent_order_keeps_only_its_latest_lines_and_others_pass_through(con, tmp_path):
    """Lines come from the latest delivery of their order: a re-sent order with fewer items
    loses the stale ones; an order delivered once keeps all of its lines."""

    def order(order_id: str, skus: list[str], day: int) -> str:
        items = [{"sku": s, "qty": 1, "price": 2.5} for s in skus]
        record = {"id": order_id, "at": f"2026-10-{day:02d}T10:00:00Z", "status": "completed"}
        return json.dumps(record | {"total": 10, "items": items}) + "\n"

    (tmp_path / "drops").mkdir()
    config = make_config(tmp_path, CRM | {"path": "none.csv"}, WEB_DROPS)
    deliveries = {
        1: order("A", ["a1", "a2", "a3"], 1) + order("B", ["b1", "b2"], 1),
        2: order("A", ["a2"], 2) + order("C", ["c1"], 2),
    }
    for day, text in deliveries.items():
        (tmp_path / "drops" / f"web_{day}.jsonl").write_text(text, encoding="utf-8")
        ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
        models.build(con, layers=("staging",))
    rows = con.execute(
        "select order_id, sku, source_file like '%web_2.jsonl' from stg_order_lines order by 1, 2"
    ).fetchall()
    assert rows == [
        ("A", "a2", True),
        ("B", "b1", False),
        ("B", "b2", False),
        ("C", "c1", True),
    ]
    assert con.execute("select count(*) from raw_order_lines").fetchone() == (7,)


def _shop_file(rng: random.Random, night_no: int, ids: list[int]) -> str:
    head = "order,customer,at,status,net\n"
    rows = [
        f"S{i},{rng.randrange(5)},2026-10-{night_no:02d},completed,{night_no}.50\n" for i in ids
    ]
    return head + "".join(rows)


def _differences(con) -> dict[str, tuple[int, int]]:
    """Per incremental staging model: rows only in the table, rows only in a rebuild."""
    out = {}
    for model in models.load_layer("staging"):
        if model.incremental:
            rebuild = f"select * from ({model.sql.strip().rstrip(';')})"
            only_table = f"select * from {model.name} except all {rebuild}"
            only_rebuild = f"{rebuild} except all select * from {model.name}"
            out[model.name] = tuple(
                con.execute(f"select count(*) from ({q})").fetchall()[0][0]
                for q in (only_table, only_rebuild)
            )
    return out


def _recorded_updates(monkeypatch) -> list[str]:
    """The models updated by key from now on, in order (each update still runs)."""
    updates = []
    real_update = models._update
    monkeypatch.setattr(
        models,
        "_update",
        lambda c, m, spec, run: updates.append(m.name) or real_update(c, m, spec, run),
    )
    return updates


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_staged_orders_updated_by_key_equal_a_rebuild_night_after_night(
    con, tmp_path, monkeypatch, seed
):
    """New drops, orders re-sent with new versions and fewer lines, a drop replaced under the
    same name, a drop turned unreadable: after every night the incrementally updated
    stg_orders / stg_order_lines hold exactly the rows a rebuild gives."""
    rng = random.Random(seed)
    updates = _recorded_updates(monkeypatch)
    (tmp_path / "drops").mkdir()
    config = make_config(tmp_path, CRM | {"path": "none.csv"}, SHOP, WEB_DROPS)
    for night_no in range(1, 7):
        if night_no == 4:  # an earlier drop replaced: other orders, some of the old ones
            name = "web_2.jsonl"
            ids = rng.sample(range(40), 12)
        elif night_no == 6:  # an earlier drop becomes unreadable: rejected, its rows gone
            name = "orders_3.csv"
            ids = []
        else:
            name = f"web_{night_no}.jsonl"
            ids = rng.sample(range(40), 15)  # new orders and new versions of earlier ones
        text = _web_file(rng, night_no, ids) if name.endswith("jsonl") else "\x00\xff\n"
        (tmp_path / "drops" / name).write_bytes(text.encode("latin-1"))
        shop_ids = rng.sample(range(30), 8)
        (tmp_path / "drops" / f"orders_{night_no}.csv").write_text(
            _shop_file(rng, night_no, shop_ids), encoding="utf-8"
        )
        run_id = f"run-{night_no}"
        ingest(con, config, run_id, dt.datetime(2026, 11, night_no, 2, 0))
        models.build(con, layers=("staging",), run_id=run_id)
        assert _differences(con) == {
            "stg_consents": (0, 0),
            "stg_customers": (0, 0),
            "stg_order_lines": (0, 0),
            "stg_orders": (0, 0),
        }, night_no
    assert updates.count("stg_orders") == 5  # night 1 builds; nights 2-6 update
    statuses = con.execute("select distinct status from ingest_log").fetchall()
    assert {"loaded", "replaced"} <= {s for (s,) in statuses}
    assert con.execute("select count(*) from stg_order_lines").fetchall()[0][0] > 0


def test_changed_sql_or_a_forget_rebuilds_instead_of_updating(con, tmp_path, monkeypatch):
    """The stored state names the SQL it was built with; `forget_incremental_state` (called by
    an erasure) and a change of the model's SQL make the next build a full one."""
    updates = []
    monkeypatch.setattr(models, "_update", lambda c, m, spec, run: updates.append(m.name))
    night(
        con,
        tmp_path,
        1,
        {"orders_1.csv": "order,customer,at,status,net\nA,1,2026-10-30,completed,10\n"},
    )
    models.build(con, layers=("staging",), run_id="run-1")
    assert sorted(updates) == ["stg_consents", "stg_customers", "stg_order_lines", "stg_orders"]
    models.forget_incremental_state(con)
    models.build(con, layers=("staging",), run_id="run-1")
    assert len(updates) == 4
    con.execute("update model_state set digest = 'older sql' where model = 'stg_orders'")
    models.build(con, layers=("staging",), run_id="run-1")
    assert sorted(updates[4:]) == ["stg_consents", "stg_customers", "stg_order_lines"]


def test_a_keyed_update_logs_the_change_column_as_it_was_and_as_it_is(con, tmp_path):
    """An update by key logs, as the run's changes, the change column of the rows it replaced
    and of the rows it wrote: a record moving from group a to d changes both groups, a new
    record its own, an untouched one none; each run's log replaces the last one's."""
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "stg_x.sql").write_text(
        "-- incremental: key = source, id; input = raw_x; changes = grp\n"
        "select source, source_file, id, grp from raw_x\n"
        "qualify row_number() over (partition by source, id order by run_id desc) = 1\n"
    )
    lineage = "run_id varchar, source varchar, source_file varchar"
    con.execute(f"create table raw_x ({lineage}, id int, grp varchar)")
    con.execute(f"create table ingest_log ({lineage}, status varchar)")

    def night(run_id: str, rows: list[tuple[int, str]]) -> list[str]:
        con.executemany(
            "insert into raw_x values (?, 's', ?, ?, ?)", [(run_id, run_id, i, g) for i, g in rows]
        )
        models.build(con, layers=("staging",), sql_dir=tmp_path, run_id=run_id)
        logged = con.execute("select run_id, key from model_changes where model = 'stg_x'")
        return sorted({f"{run}:{key}" for run, key in logged.fetchall()})

    assert night("r1", [(1, "a"), (2, "b"), (3, "c")]) == []  # built whole: nothing to log
    assert night("r2", [(1, "d"), (4, "e")]) == ["r2:a", "r2:d", "r2:e"]
    assert night("r3", [(2, "b")]) == ["r3:b"]
    staged = con.execute("select id, grp from stg_x order by id").fetchall()
    assert staged == [(1, "d"), (2, "b"), (3, "c"), (4, "e")]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("key = order_key; after = stg_orders; sort = x", "bad incremental header part 'sort = x'"),
        ("key = ; input = raw_orders", "bad incremental header part 'key ='"),
        ("key = order_key", "needs a key and input or after"),
        ("key = k; input = raw_orders; after = stg_orders", "input with after needs touched"),
        ("key = k; touched = t", "needs a key and input or after"),
    ],
)
def test_a_bad_incremental_header_names_the_model_and_the_part(header, message):
    model = models.Model("stg_x", "staging", f"-- incremental: {header}\nselect 1")
    with pytest.raises(ValueError, match=f"sql model stg_x: .*{message}"):
        _ = model.incremental


def test_the_shipped_incremental_headers_parse():
    headers = {
        m.name: m.incremental
        for layer in ("staging", "core")
        for m in models.load_layer(layer)
        if m.incremental
    }
    assert headers["stg_orders"] == models.Incremental(
        key=("source", "order_id"), input="raw_orders", changes="order_key"
    )
    assert headers["orders"].after == ("stg_orders", "customer_xref")
    assert headers["customer_order_stats"] == models.Incremental(
        key=("customer_id",), after=("orders", "order_lines"), touched="customer_order_stats"
    )
    assert headers["orders"].changes == "customer_id"
    assert headers["purchase_days"] == models.Incremental(key=("customer_id",), after=("orders",))
    assert headers["customers"].after == ("customer_attributes", "identity_records")
    assert headers["stg_customers"] == models.Incremental(
        key=("source", "source_record_id"),
        input="raw_customers",
        touched="stg_customers",
        changes="source_record_id",
    )
    assert headers["stg_consents"] == models.Incremental(
        key=("source", "consent_id"),
        input="raw_consents",
        after=("stg_customers",),
        touched="stg_consents",
        changes="consent_key",
    )
    assert set(headers) == {
        "stg_customers",
        "stg_consents",
        "stg_orders",
        "stg_order_lines",
        "orders",
        "order_lines",
        "purchase_days",
        "customer_order_stats",
        "customers",
    }


SNAPSHOT_CRM = CRM | {"load": "snapshot"}


def _export(records: dict[str, tuple[str, ...]], head: str = "id,first,upd") -> str:
    return head + "\n" + "".join(",".join((i, *values)) + "\n" for i, values in records.items())


def _touched(con, run_id: str) -> list[tuple]:
    """What `sql/touched/stg_customers.sql` selects for `run_id` (before the build)."""
    (model,) = [m for m in models.load_layer("staging") if m.name == "stg_customers"]
    return sorted(con.execute(model.touched_sql, {"run_id": run_id}).fetchall())


def test_an_unchanged_redelivery_keeps_a_records_first_delivery_and_deletion_time(con, tmp_path):
    """A snapshot export re-sends every record: a record's staged row names the delivery since
    which it reads as it does, so re-sending it changes nothing and touches nothing; a record
    that left the exports keeps the time of the first export that missed it."""
    (tmp_path / "drops").mkdir()
    config = make_config(tmp_path, SNAPSHOT_CRM)
    ann, bo = ("Ann", "2026-01-01"), ("Bo", "2026-01-01")
    exports = [{"1": ann, "2": bo}, {"1": ann, "2": bo}, {"1": ("Anne", "2026-02-01")}, {"1": ann}]
    touched, staged = [], []
    for day, records in enumerate(exports, start=1):
        (tmp_path / "drops" / f"crm_{day}.csv").write_text(_export(records), encoding="utf-8")
        ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
        if day > 1:
            touched.append(_touched(con, f"run-{day}"))
        models.build(con, layers=("staging",), run_id=f"run-{day}")
        staged.append(
            con.execute(
                "select source_record_id, first_name, source_file, loaded_at, is_deleted, "
                "deleted_at from stg_customers order by 1"
            ).fetchall()
        )
    loaded = dict(
        con.execute(
            "select source_file, started_at from ingest_log where status = 'loaded'"
        ).fetchall()
    )
    night_1 = dt.datetime(2026, 11, 1, 2, 0)
    assert staged[1] == [
        ("1", "Ann", "drops/crm_1.csv", night_1, False, None),
        ("2", "Bo", "drops/crm_1.csv", night_1, False, None),
    ]
    assert touched[0] == []  # night 2 re-sent both unchanged
    assert touched[1] == [("crm", "1"), ("crm", "2")]  # Ann renamed, Bo gone
    deleted_bo = ("2", "Bo", "drops/crm_1.csv", night_1, True)
    assert staged[2][1] == (*deleted_bo, loaded["drops/crm_3.csv"])
    # night 4: Bo still gone, since night 3; Ann's old name is her current version again, and
    # its lineage the delivery of export 4 (the newest update wins, then the latest load)
    assert staged[3][1] == (*deleted_bo, loaded["drops/crm_3.csv"])
    assert staged[3][0][:3] == ("1", "Anne", "drops/crm_3.csv")
    assert touched[2] == [("crm", "1")]


FLAGGED_CRM = SNAPSHOT_CRM | {
    "columns": SNAPSHOT_CRM["columns"] | {"email_opt_in": "news"},
    "consents_from_opt_in": True,
}
PREFS = {
    "name": "prefs",
    "kind": "consents",
    "path": "drops/prefs_*.csv",
    "format": "csv",
    "customer_source": "crm",
    "columns": {
        "consent_id": "event",
        "customer_record_id": "customer",
        "channel": "channel",
        "is_opt_in": "status",
        "consented_at": "at",
    },
}


def _crm_nights(con, folder, seed: int, replaced: str) -> list[tuple[dict, list[tuple]]]:
    """Ten nights of snapshot exports with changed, corrected (same update time), reverted,
    older (the CRM's clock went back), missing, returning and quarantined records, opt-in flags
    set, changed and cleared, an export re-sent with other content on night 6 (`replaced`), the
    latest export re-sent broken (night 7: rejected, the previous one takes over), an export
    named before the latest, and the latest export re-sent broken again; a consent file a
    night, some events re-sent with another answer. The staging models are updated by key each
    night. Per night: each incremental model's differences from a rebuild, and the staged CRM
    rows."""
    rng = random.Random(seed)
    (folder / "drops").mkdir(parents=True)
    config = make_config(folder, FLAGGED_CRM, PREFS)
    history = {str(i): [(f"N{i}", "2026-01-01", "")] for i in range(30)}
    present = set(history)

    def export() -> dict[str, tuple[str, ...]]:
        records = {}
        for i, versions in history.items():
            if i in present and rng.random() < 0.1:
                present.discard(i)
            elif i not in present and rng.random() < 0.3:
                present.add(i)
            if i not in present:
                continue
            roll, (first, upd, news) = rng.random(), versions[-1]
            if roll < 0.15:  # a change, of the name or of the opt-in
                upd = f"2026-{len(versions) % 12 + 1:02d}-02"
                if rng.random() < 0.5:
                    versions.append((first + "x", upd, news))
                else:
                    versions.append((first, upd, rng.choice(["yes", "no", ""])))
            elif roll < 0.2:  # a correction without a new update time
                versions.append((first + "c", upd, news))
            elif roll < 0.25 and len(versions) > 1:  # back to an earlier version
                versions.append(rng.choice(versions[:-1]))
            elif roll < 0.28:  # the CRM's clock went back
                versions.append((first + "o", "2025-06-01", news))
            records[i] = versions[-1]
            if rng.random() < 0.05:  # a row quarantined: its record counts as present
                records[i] = (records[i][0], "never", records[i][2])
        return records

    def prefs(night_no: int) -> str:
        events = rng.sample(range(12), 4)  # some sent on earlier nights: a newer answer
        rows = [
            f"E{e},{rng.randrange(30)},{rng.choice(['email', 'sms'])},"
            f"{rng.choice(['yes', 'no'])},2026-10-{night_no:02d}T10:00:00\n"
            for e in events
        ]
        return "event,customer,channel,status,at\n" + "".join(rows)

    plan = {6: replaced, 7: "crm_05.csv", 8: "crm_03b.csv", 10: "crm_09.csv"}
    nights = []
    for night_no in range(1, 11):
        name = plan.get(night_no, f"crm_{night_no:02d}.csv")
        if night_no in (7, 10):  # re-sent unreadable: rejected, its rows gone
            (folder / "drops" / name).write_bytes(b"\x00\xff\n")
        else:
            text = _export(export(), head="id,first,upd,news")
            (folder / "drops" / name).write_text(text, encoding="utf-8")
        (folder / "drops" / f"prefs_{night_no:02d}.csv").write_text(prefs(night_no))
        run_id = f"run-{night_no}"
        ingest(con, config, run_id, dt.datetime(2026, 11, night_no, 2, 0))
        models.build(con, layers=("staging",), run_id=run_id)
        # deleted_at by the export it names: two runs of these nights ingest at other moments
        staged = con.execute(
            "select s.* exclude (deleted_at), e.source_file as deleted_by from stg_customers s "
            "left join snapshot_exports() e on e.loaded_at = s.deleted_at order by all"
        ).fetchall()
        assert staged
        nights.append((_differences(con), staged))
    return nights


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_staged_crm_records_updated_by_key_equal_a_rebuild_night_after_night(
    con, tmp_path, monkeypatch, seed
):
    """After every night of `_crm_nights` (the previous export re-sent with other content on
    night 6) stg_customers and stg_consents, updated by key, hold exactly what a rebuild
    gives."""
    updates = _recorded_updates(monkeypatch)
    nights = _crm_nights(con, tmp_path, seed, replaced="crm_04.csv")
    for differences, _ in nights:
        assert set(differences.values()) == {(0, 0)}, differences
    assert {"stg_customers", "stg_consents"} <= set(nights[0][0])
    # night 1 builds; nights 2-10 update
    assert updates.count("stg_customers") == updates.count("stg_consents") == 9
    flags = con.execute(
        "select count(*) from stg_consents where method = 'crm_opt_in_flag'"
    ).fetchall()
    assert flags[0][0] > 0
    statuses = {s for (s,) in con.execute("select distinct status from ingest_log").fetchall()}
    assert {"loaded", "replaced", "rejected"} <= statuses
    assert any(row[-1] for row in nights[-1][1])  # deleted records, naming their export


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pruned_exports_leave_staging_as_it_is_with_every_export_kept(
    con, tmp_path, monkeypatch, seed
):
    """After every night of `_crm_nights` (the latest export re-sent with other content on
    night 6) stg_customers holds what it holds when old exports are never pruned."""
    from ccv.ingest import load

    pruned = _crm_nights(con, tmp_path / "pruned", seed, replaced="crm_05.csv")
    raw_pruned = con.execute("select count(*) from raw_customers").fetchall()[0][0]
    monkeypatch.setattr(load, "prune_superseded_snapshot_rows", lambda con: 0)
    with duckdb.connect() as everything:
        everything.execute("set TimeZone = 'UTC'")
        kept = _crm_nights(everything, tmp_path / "kept", seed, replaced="crm_05.csv")
        raw_kept = everything.execute("select count(*) from raw_customers").fetchall()[0][0]
    assert [rows for _, rows in pruned] == [rows for _, rows in kept]
    assert raw_pruned < raw_kept


def test_old_exports_keep_one_row_of_a_record_sent_unchanged(con, tmp_path):
    """Five exports of the same three records: the last two stay whole, and of the three
    older ones only each record's first delivery (its staged row) stays."""
    (tmp_path / "drops").mkdir()
    config = make_config(tmp_path, SNAPSHOT_CRM)
    records = {str(i): (f"N{i}", "2026-01-01") for i in range(3)}
    for day in range(1, 6):
        (tmp_path / "drops" / f"crm_{day}.csv").write_text(_export(records), encoding="utf-8")
        ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
    models.build(con, layers=("staging",), run_id="run-5")
    per_file = con.execute(
        "select source_file, count(*) from raw_customers group by 1 order by 1"
    ).fetchall()
    assert per_file == [("drops/crm_1.csv", 3), ("drops/crm_4.csv", 3), ("drops/crm_5.csv", 3)]
    staged = con.execute("select distinct source_file from stg_customers").fetchall()
    assert staged == [("drops/crm_1.csv",)]


def test_a_dropped_export_column_neither_reaches_extra_nor_makes_a_new_version(tmp_path):
    """An export that stamps every row with its export time: kept in `extra`, the stamp makes
    every record a new version each night (all restaged); dropped (`drop_columns`), a
    re-delivery of the same records touches nothing, and other unmapped columns stay."""
    head = "id,first,upd,exported,note"

    def second_night(drop: list[str]) -> tuple[list[tuple], list[str]]:
        folder = tmp_path / ("dropped" if drop else "kept")
        (folder / "drops").mkdir(parents=True)
        config = make_config(folder, SNAPSHOT_CRM | {"drop_columns": drop})
        con = duckdb.connect()
        for day in (1, 2):
            stamp = f"2026-11-0{day}T01:00:00"
            records = {
                "1": ("Ann", "2026-01-01", stamp, "vip"),
                "2": ("Bo", "2026-01-01", stamp, "new"),
            }
            (folder / "drops" / f"crm_{day}.csv").write_text(
                _export(records, head), encoding="utf-8"
            )
            ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
            touched = _touched(con, f"run-{day}") if day == 2 else []
            models.build(con, layers=("staging",), run_id=f"run-{day}")
        extra = [e for (e,) in con.execute("select extra from raw_customers").fetchall()]
        return touched, extra

    touched, extra = second_night(drop=[])
    assert touched == [("crm", "1"), ("crm", "2")]
    assert all("exported" in json.loads(e) for e in extra)
    touched, extra = second_night(drop=["exported"])
    assert touched == []
    # the other unmapped column is still kept
    assert sorted(json.loads(e)["note"] for e in extra) == ["new", "new", "vip", "vip"]
    assert not any("exported" in json.loads(e) for e in extra)


def test_a_crm_version_covers_every_delivered_column(con):
    """`crm_version` (sql/macros/crm_version.sql) hashes every column of raw_customers but the
    lineage: a column added to raw_customers and left out would make two different versions
    one, and a re-delivery that changes only it would leave stg_customers as it was."""
    from ccv.warehouse.schema import ensure_schema

    ensure_schema(con)
    models.create_macros(con)
    lineage = {"run_id", "source", "source_file", "row_number", "loaded_at"}
    table = con.execute("select name from pragma_table_info('raw_customers')").fetchall()
    columns = [c for (c,) in table if c not in lineage]
    macro = (models.SQL_DIR / "macros" / "crm_version.sql").read_text(encoding="utf-8")
    named = set(re.findall(r"\br\.(\w+)", macro))
    assert named == set(columns)
    # and crm_fields (what the report compares) all of them but the unmapped columns
    fields = (models.SQL_DIR / "macros" / "crm_fields.sql").read_text(encoding="utf-8")
    assert set(re.findall(r"\br\.(\w+)", fields)) == set(columns) - {"extra"}


def test_staged_consents_follow_a_change_of_the_sources_settings(con, tmp_path):
    """Flags turned off, on again, and a consent source pointed at another CRM source: the
    consent events updated by key are a rebuild's each night (sql/touched/stg_consents.sql)."""
    (tmp_path / "drops").mkdir()
    crm = "id,first,upd,news\n1,Ann,2026-01-01,yes\n2,Bo,2026-01-01,no\n"
    prefs = "event,customer,channel,status,at\nE1,1,email,yes,2026-10-01T10:00:00\n"
    (tmp_path / "drops" / "crm_01.csv").write_text(crm, encoding="utf-8")
    (tmp_path / "drops" / "prefs_01.csv").write_text(prefs, encoding="utf-8")
    settings = [
        (FLAGGED_CRM, PREFS),
        (FLAGGED_CRM | {"consents_from_opt_in": False}, PREFS),
        (FLAGGED_CRM, PREFS),
        (FLAGGED_CRM, PREFS | {"customer_source": "other"}, CRM | {"name": "other"}),
    ]
    flags = []
    for night_no, sources in enumerate(settings, start=1):
        run_id = f"run-{night_no}"
        ingest(con, make_config(tmp_path, *sources), run_id, dt.datetime(2026, 11, night_no, 2))
        models.build(con, layers=("staging",), run_id=run_id)
        assert _differences(con)["stg_consents"] == (0, 0), night_no
        flags.append(
            con.execute(
                "select count(*) filter (where method = 'crm_opt_in_flag'), "
                "max(customer_source) filter (where source = 'prefs') from stg_consents"
            ).fetchall()[0]
        )
    assert flags == [(2, "crm"), (0, "crm"), (2, "crm"), (2, "other")]
    state = con.execute("select updated from model_state where model = 'stg_consents'")
    assert state.fetchall() == [(True,)]


def test_a_new_export_is_compared_with_the_one_before_and_export_stamps_are_named(
    con, tmp_path, caplog
):
    """Each night that loads a snapshot export records what it changed against the export
    before (`snapshot_changes`): new, changed, gone, and changed only in unmapped columns —
    an export stamp in every row shows as that, is named, and is warned about."""
    (tmp_path / "drops").mkdir()
    config = make_config(tmp_path, SNAPSHOT_CRM)
    head = "id,first,upd,exported,note"
    exports = {
        1: {"1": ("Ann", "2026-01-01", "t1", "a"), "2": ("Bo", "2026-01-01", "t1", "b")},
        # Ann only stamped again, Bo renamed (and stamped), Cy new
        2: {
            "1": ("Ann", "2026-01-01", "t2", "a"),
            "2": ("Bob", "2026-01-01", "t2", "b"),
            "3": ("Cy", "2026-01-01", "t2", "c"),
        },
        # Bo gone; Ann's note changes too; Cy only stamped again
        3: {"1": ("Ann", "2026-01-01", "t3", "x"), "3": ("Cy", "2026-01-01", "t3", "c")},
    }
    for day, records in exports.items():
        (tmp_path / "drops" / f"crm_{day}.csv").write_text(_export(records, head), encoding="utf-8")
        with caplog.at_level("WARNING", logger="ccv.ingest.export_changes"):
            ingest(con, config, f"run-{day}", dt.datetime(2026, 11, day, 2, 0))
    rows = con.execute(
        "select run_id, export, previous_export, records, new, changed, changed_unmapped_only, "
        "gone, unmapped_changed from snapshot_changes order by run_id"
    ).fetchall()
    assert rows == [
        ("run-1", "drops/crm_1.csv", None, 2, 2, 0, 0, 0, []),
        ("run-2", "drops/crm_2.csv", "drops/crm_1.csv", 3, 1, 2, 1, 0, ["exported"]),
        # the columns that changed in at least half of them, the most often changed first
        ("run-3", "drops/crm_3.csv", "drops/crm_2.csv", 2, 0, 2, 2, 1, ["exported", "note"]),
    ]
    # run-2: one of two re-sent records changed only there (half: warned); run-3: both
    warned = [r.getMessage() for r in caplog.records if "drop_columns" in r.getMessage()]
    assert len(warned) == 2 and "(exported)" in warned[0] and "(exported, note)" in warned[1]
    # the run's summary (and report) shows its export's row
    con.execute("insert into runs values ('run-3', null, '2026-11-03 02:00', null, 'x', false)")
    summary = markdown_summary(con, "run-3")
    assert "| only unmapped |" in summary
    assert "| crm | drops/crm_3.csv | 2 | 0 | 2 | 2 | 1 | exported, note |" in summary
    # a night without a new export records nothing
    ingest(con, config, "run-4", dt.datetime(2026, 11, 4, 2, 0))
    assert con.execute("select count(*) from snapshot_changes").fetchone() == (3,)
