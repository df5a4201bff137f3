"""Ingest: every row read is loaded or quarantined with a readable reason; loads are idempotent."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import duckdb
import pytest

from ccv.ingest.load import IngestError, ingest
from tests.conftest import CONSENTS, NOW, WEB, make_config

CRM = {
    "name": "crm",
    "kind": "customers",
    "path": "crm.csv",
    "format": "csv",
    "columns": {
        "source_record_id": "id",
        "first_name": "first",
        "email": "mail",
        "birth_date": "dob",
    },
    "formats": {"birth_date": "%d/%m/%Y"},
}


RUNS = itertools.count(1)
"""`run_ingest`'s run ids: each call is a night of its own (one run that ingests again is a
retried ingest, which reports what its earlier attempt loaded)."""


def run_ingest(con, tmp_path, files: dict[str, str | bytes], *sources, **sections):
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    config = make_config(tmp_path, *(sources or (CRM,)), **sections)
    return ingest(con, config, f"run-{next(RUNS)}", NOW)


def quarantine(con) -> list[tuple]:
    return con.execute(
        "select row_number, line_number, field, rule, raw_value from quarantine order by all"
    ).fetchall()


def assert_accounted(results):
    for r in results:
        assert r.rows_read == r.rows_loaded + r.rows_quarantined, r


def test_valid_rows_load_typed_and_unmapped_columns_go_to_extra(con, tmp_path):
    results = run_ingest(
        con,
        tmp_path,
        {"crm.csv": "id,first,mail,dob,promo\n1,Ann,ann@example.com,05/03/1990,XMAS\n"},
    )
    assert results[0].rows_loaded == 1
    row = con.execute("select first_name, email, birth_date, extra from raw_customers").fetchone()
    # dob is day-first per the mapping's format: 5 March, not 3 May
    assert str(row[2]) == "1990-03-05"
    assert json.loads(row[3]) == {"promo": "XMAS"}


@pytest.mark.parametrize(
    ("line", "field", "rule"),
    [
        (",Bob,bob@example.com,01/01/1980", "source_record_id", "required"),  # no key
        ("1,Bob,bob@example.com,01/01/1980", "source_record_id", "duplicate_id"),  # id reused
    ],
)
def test_invalid_rows_are_quarantined_with_field_and_rule(con, tmp_path, line, field, rule):
    content = f"id,first,mail,dob\n1,Ann,ann@example.com,05/03/1990\n{line}\n"
    results = run_ingest(con, tmp_path, {"crm.csv": content})
    assert_accounted(results)
    assert results[0].rows_loaded == 1 and results[0].rows_quarantined == 1
    (q,) = quarantine(con)
    assert q[0] == 2 and q[2] == field and rule in q[3]
    # the first occurrence of a reused id is the one that stays
    assert con.execute("select first_name from raw_customers").fetchall() == [("Ann",)]


@pytest.mark.parametrize(
    ("line", "field", "rule"),
    [
        ("2,Bob,bob-at-example.com,01/01/1980", "email", "email_syntax"),  # no @
        ("2,Bob,bob@example.com,31/02/1980", "birth_date", "parse_date"),  # 31 Feb
        ("2,Bob,bob@example.com,01/01/2099", "birth_date", "date_out_of_range"),  # future
    ],
)
def test_a_bad_email_or_birth_date_is_withheld_and_the_record_loads(
    con, tmp_path, line, field, rule
):
    content = f"id,first,mail,dob\n1,Ann,ann@example.com,05/03/1990\n{line}\n"
    results = run_ingest(con, tmp_path, {"crm.csv": content})
    assert_accounted(results)
    assert results[0].rows_loaded == 2 and results[0].rows_quarantined == 0
    assert quarantine(con) == []
    assert con.execute("select row_number, field, rule from withheld_values").fetchall() == [
        (2, field, rule)
    ]
    bob = con.execute(
        f"select first_name, {field} from raw_customers where source_record_id = '2'"
    ).fetchall()
    assert bob == [("Bob", None)]


def test_rows_the_reader_cannot_split_are_quarantined_with_their_line(con, tmp_path):
    content = 'id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,Bob\n3,"Cy\nrus",c@x.com,01/01/1990\n'
    results = run_ingest(con, tmp_path, {"crm.csv": content})
    assert_accounted(results)
    # the quoted newline is one valid record; "2,Bob" (line 3) lacks columns
    assert (results[0].rows_loaded, results[0].rows_quarantined) == (2, 1)
    (q,) = quarantine(con)
    assert q[1] == 3 and q[3].startswith("malformed_row")


def test_file_missing_mapped_columns_is_rejected_whole_and_loses_nothing(con, tmp_path):
    results = run_ingest(con, tmp_path, {"crm.csv": "id,first\n1,Ann\n2,Bob\n"})
    (r,) = results
    assert r.status == "rejected" and "'mail'" in r.message and "'dob'" in r.message
    assert r.rows_quarantined == 2 and r.rows_loaded == 0


def test_mandatory_source_failure_stops_the_run_with_a_clear_error(con, tmp_path):
    with pytest.raises(IngestError, match="crm"):
        run_ingest(con, tmp_path, {"crm.csv": "id,first\n1,Ann\n"}, CRM | {"mandatory": True})


def test_empty_and_header_only_files_load_nothing(con, tmp_path):
    for content in ("", "id,first,mail,dob\n"):
        results = run_ingest(con, tmp_path, {"crm.csv": content})
        assert results[0].rows_read == 0 and results[0].status in ("loaded", "replaced")


def test_rerun_of_same_file_loads_nothing_twice(con, tmp_path):
    files = {"crm.csv": "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n"}
    run_ingest(con, tmp_path, files)
    again = run_ingest(con, tmp_path, files)
    assert again[0].status == "unchanged" and again[0].rows_loaded == 0
    assert con.execute("select count(*) from raw_customers").fetchone()[0] == 1


def test_changed_file_replaces_the_rows_of_its_earlier_version(con, tmp_path):
    run_ingest(con, tmp_path, {"crm.csv": "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,B,,\n"})
    changed = run_ingest(con, tmp_path, {"crm.csv": "id,first,mail,dob\n1,Anne,a@x.com,\n"})
    assert changed[0].status == "replaced"
    assert con.execute("select source_record_id, first_name from raw_customers").fetchall() == [
        ("1", "Anne")
    ]


def test_orders_from_jsonl_with_a_broken_line(con, tmp_path):
    orders = {
        "name": "web",
        "kind": "orders",
        "path": "orders.jsonl",
        "format": "jsonl",
        "columns": {
            "order_id": "id",
            "email": "email",
            "ordered_at": "at",
            "status": "status",
            "net_amount": "total",
        },
        "constants": {"channel": "web"},
    }
    lines = [
        json.dumps(
            {
                "id": "W1",
                "email": "a@x.com",
                "at": "2025-06-01T14:03:22Z",
                "status": "completed",
                "total": 10.5,
                "items": [{"sku": "A"}],
            }
        ),
        '{"id": "W2", "email": ',  # truncated line
        json.dumps(
            {
                "id": "W3",
                "email": "b@x.com",
                "at": "2025-06-01T14:03:22Z",
                "status": "completed",
                "total": -3,
            }
        ),
        json.dumps(
            {
                "id": "W4",
                "email": "c@x.com",
                "at": "2025-06-01T14:03:22+02:00",
                "status": "shipped",
                "total": 1,
            }
        ),
    ]
    results = run_ingest(
        con, tmp_path, {"orders.jsonl": "\n".join(lines) + "\n"}, CRM | {"path": "none.csv"}, orders
    )
    web = results[1]
    assert_accounted(results)
    assert (web.rows_read, web.rows_loaded, web.rows_quarantined) == (4, 1, 3)
    rules = {q[3] for q in quarantine(con)}
    assert rules == {"malformed_row:invalid_json", "negative_amount", "unknown_status"}
    (ordered_at, extra) = con.execute("select ordered_at, extra from raw_orders").fetchone()
    assert str(ordered_at) == "2025-06-01 14:03:22"
    assert json.loads(extra)["items"] == '[{"sku":"A"}]'


# --- idempotent and incremental loads ------------------------------------------------------------

TABLES = ("raw_customers", "quarantine")


def snapshot_tables(con, tables=TABLES) -> dict[str, list[tuple]]:
    """Full contents of `tables` (run-independent columns), sorted: compare values, not counts."""
    out = {}
    for table in tables:
        columns = [
            c for (c,) in con.execute(f"select column_name from (describe {table})").fetchall()
        ]
        keep = [c for c in columns if c not in ("run_id", "loaded_at", "quarantined_at")]
        out[table] = con.execute(f"select {', '.join(keep)} from {table} order by all").fetchall()
    return out


def test_second_run_over_the_same_files_gives_identical_tables(con, tmp_path):
    files = {"crm.csv": "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,Bo,bad,\n3,Cy,,x\n"}
    run_ingest(con, tmp_path, files)
    first = snapshot_tables(con)
    first_full = con.execute("select * from raw_customers order by all").fetchall()
    again = run_ingest(con, tmp_path, files)
    assert [r.status for r in again] == ["unchanged"]
    assert snapshot_tables(con) == first
    # nothing was rewritten either: even the load timestamps are the first run's
    assert con.execute("select * from raw_customers order by all").fetchall() == first_full


def test_a_new_file_in_a_glob_folder_loads_only_that_file(con, tmp_path):
    source = CRM | {"path": "drops/crm_*.csv"}
    (tmp_path / "drops").mkdir()
    first = {"drops/crm_2026-10-30.csv": "id,first,mail,dob\n1,Ann,a@x.com,\n"}
    run_ingest(con, tmp_path, first, source)
    before = snapshot_tables(con, ("raw_customers",))["raw_customers"]
    second = {"drops/crm_2026-10-31.csv": "id,first,mail,dob\n2,Bo,b@x.com,\n"}
    results = run_ingest(con, tmp_path, second, source)
    assert [(r.source_file.rsplit("/", 1)[-1], r.status, r.rows_loaded) for r in results] == [
        ("crm_2026-10-30.csv", "unchanged", 0),
        ("crm_2026-10-31.csv", "loaded", 1),
    ]
    after = snapshot_tables(con, ("raw_customers",))["raw_customers"]
    assert set(before) < set(after) and len(after) == 2


# --- snapshots, phone region, consents, order lines ---------------------------------------------


def build_staging(con):
    from ccv.warehouse import models

    models.build(con, layers=("staging",))


def test_a_newer_version_with_a_withheld_email_supersedes_the_older_one(con, tmp_path):
    """The source holds no usable e-mail for Ann now: her newer version stays current with a NULL
    e-mail (not the older address), and its new name with it."""
    source = CRM | {"path": "drops/crm_*.csv", "columns": CRM["columns"] | {"updated_at": "upd"}}
    (tmp_path / "drops").mkdir()
    head = "id,first,mail,dob,upd\n"
    run_ingest(con, tmp_path, {"drops/crm_1.csv": head + "1,Ann,ann@x.com,,2026-01-01\n"}, source)
    run_ingest(con, tmp_path, {"drops/crm_2.csv": head + "1,Anne,ann.x.com,,2026-02-01\n"}, source)
    build_staging(con)
    staged = con.execute("select first_name, email, source_file from stg_customers").fetchall()
    assert staged == [("Anne", None, "drops/crm_2.csv")]


def test_records_missing_from_the_latest_snapshot_are_marked_deleted_not_erased(con, tmp_path):
    source = CRM | {
        "path": "drops/crm_*.csv",
        "load": "snapshot",
        "phone_region": "IE",
        "columns": CRM["columns"] | {"updated_at": "upd"},
    }
    (tmp_path / "drops").mkdir()
    head = "id,first,mail,dob,upd\n"
    night_1 = head + "1,Ann,a@x.com,,\n2,Bo,b@x.com,,\n"
    run_ingest(con, tmp_path, {"drops/crm_1.csv": night_1}, source)
    # night 2: Bo is gone; Cy's row is quarantined (its update time is no time) but she is
    # still in the file
    night_2 = head + "1,Ann,a@x.com,,\n3,Cy,c@x.com,,yesterday\n"
    run_ingest(con, tmp_path, {"drops/crm_2.csv": night_2}, source)
    build_staging(con)
    rows = con.execute(
        "select source_record_id, is_deleted, deleted_at is not null, phone_region "
        "from stg_customers order by 1"
    ).fetchall()
    assert rows == [("1", False, False, "IE"), ("2", True, True, "IE")]
    assert con.execute("select count(*) from raw_customers").fetchone()[0] == 3


def test_file_keys_sort_names_in_natural_order_alike_in_python_and_sql():
    """Numbered and dated drops sort by their numbers whether padded or not; Python (the
    order a run loads files in) and SQL (the order staging ranks them in) agree."""
    from ccv.ingest.file_names import file_key
    from ccv.warehouse.models import SQL_DIR

    names = [
        "drops/crm_10.csv",
        "drops/crm_9.csv",
        "drops/crm_09.csv",
        "drops/crm_100.csv",
        "drops/crm.csv",
        "2026-1-5/crm.csv",
        "2026-01-12/crm.csv",
        "ünïcode_٣_2.csv",
        "x" + "1" * 25 + ".csv",
        "",
    ]
    with duckdb.connect() as con:
        con.execute((SQL_DIR / "macros" / "file_key.sql").read_text(encoding="utf-8"))
        in_sql = con.execute("select list(file_key(n)) from unnest(?) as t(n)", [names])
        assert in_sql.fetchone()[0] == [file_key(n) for n in names]
    in_order = sorted(names, key=lambda n: (file_key(n), n))
    assert in_order[in_order.index("drops/crm_09.csv") :][:3] == [
        "drops/crm_09.csv",
        "drops/crm_9.csv",
        "drops/crm_10.csv",
    ]
    assert in_order.index("2026-1-5/crm.csv") < in_order.index("2026-01-12/crm.csv")


def test_numbered_snapshot_exports_age_in_natural_order(con, tmp_path):
    """crm_10.csv is the latest export after crm_9.csv, loaded in one run (one load time for
    all three exports) or on separate nights: its version of a record is the current one, a
    record it misses is deleted, and pruning keeps it (and crm_9.csv) whole."""
    source = CRM | {"path": "drops/crm_*.csv", "load": "snapshot"}
    (tmp_path / "drops").mkdir()
    head = "id,first,mail,dob\n"
    exports = {
        "drops/crm_8.csv": head + "1,Ann,a@x.com,\n2,Bo,b@x.com,\n3,Cy,c@x.com,\n",
        "drops/crm_9.csv": head + "1,Ann,a@x.com,\n2,Bo,b@x.com,\n",
        "drops/crm_10.csv": head + "1,Anna,a@x.com,\n4,Di,d@x.com,\n",
    }
    expected = [("1", "Anna", False), ("2", "Bo", True), ("3", "Cy", True), ("4", "Di", False)]
    loaded = run_ingest(con, tmp_path, exports, source)
    assert [r.source_file for r in loaded] == list(exports)  # loaded in natural order too
    build_staging(con)
    staged = "select source_record_id, first_name, is_deleted from stg_customers order by 1"
    assert con.execute(staged).fetchall() == expected
    kept = "select source_file, count(*) from raw_customers group by 1 order by 1"
    assert dict(con.execute(kept).fetchall())["drops/crm_10.csv"] == 2

    with duckdb.connect() as nightly:
        config = make_config(tmp_path, source)
        for day, name in enumerate(exports, start=1):
            for path in (tmp_path / "drops").iterdir():
                path.unlink()
            (tmp_path / name).write_text(exports[name], encoding="utf-8")
            ingest(nightly, config, f"run-{day}", NOW + dt.timedelta(days=day))
        build_staging(nightly)
        assert nightly.execute(staged).fetchall() == expected
        # deleted as of the export that first missed them: 3 by crm_9.csv, 2 by crm_10.csv
        missed_by = nightly.execute(
            "select s.source_record_id, l.source_file from stg_customers as s "
            "join ingest_log as l on l.started_at = s.deleted_at order by 1"
        ).fetchall()
        assert missed_by == [("2", "drops/crm_10.csv"), ("3", "drops/crm_9.csv")]
        # an export numbered before the latest, delivered late, is not the latest: nothing moves
        (tmp_path / "drops" / "crm_7.csv").write_text(head + "5,Ed,e@x.com,\n", encoding="utf-8")
        ingest(nightly, config, "run-4", NOW + dt.timedelta(days=4))
        build_staging(nightly)
        staged_late = nightly.execute(staged).fetchall()
        assert staged_late == [*expected, ("5", "Ed", True)]


SNAPSHOT_CRM = CRM | {
    "path": "drops/crm_*.csv",
    "load": "snapshot",
    "columns": CRM["columns"] | {"updated_at": "upd"},
}
# four nightly exports: Ann renamed on night 2; Bo renamed on night 2, gone from night 3; Cy's
# first export carries the newest update time (the CRM's clock went back); Di new on night 4
EXPORTS = [
    ["1,Ann,a@x.com,,2026-01-01", "2,Bo,b@x.com,,2026-01-01", "3,Cy,c@x.com,,2026-03-01"],
    ["1,Anne,a@x.com,,2026-02-01", "2,Bob,b@x.com,,2026-02-01", "3,Cyd,c@x.com,,2026-01-01"],
    ["1,Anne,a@x.com,,2026-02-01", "3,Cyd,c@x.com,,2026-01-01"],
    ["1,Anne,a@x.com,,2026-02-01", "3,Cyd,c@x.com,,2026-01-01", "4,Di,d@x.com,,2026-04-01"],
]
HEAD = "id,first,mail,dob,upd\n"


def snapshot_nights(con, folder, exports=EXPORTS) -> list[tuple[list[tuple], dict[str, int]]]:
    """Ingest the four exports night by night, then a broken re-delivery of the fourth (a
    column missing: rejected, its rows go); after night 4 and after that night: the staged
    records and the raw rows per file."""
    (folder / "drops").mkdir(parents=True)
    seen = []
    for night, rows in enumerate([*exports, None], start=1):
        if rows is None:  # night 5: crm_4.csv comes again without its `upd` column
            files = {"drops/crm_4.csv": "id,first,mail,dob\n4,Di,d@x.com,\n"}
        else:
            files = {f"drops/crm_{night}.csv": HEAD + "\n".join(rows) + "\n"}
        run_ingest(con, folder, files, SNAPSHOT_CRM)
        if night >= 4:
            build_staging(con)
            staged = con.execute(
                "select source_record_id, first_name, is_deleted, source_file "
                "from stg_customers order by 1"
            ).fetchall()
            per_file = dict(
                con.execute("select source_file, count(*) from raw_customers group by 1").fetchall()
            )
            seen.append((staged, per_file))
    return seen


def test_a_pruned_snapshot_row_takes_its_withheld_values_along(con, tmp_path):
    """Bo is sent unchanged, with a bad e-mail (withheld), in four exports: of the two old
    ones, crm_1 keeps his first delivery and crm_2's row of him is pruned (crm_3 sends the
    same version later), and so is the value withheld from it; the others stay with their
    rows."""
    (tmp_path / "drops").mkdir()
    for night in range(1, 5):
        files = {f"drops/crm_{night}.csv": HEAD + "2,Bo,b.x.com,,2026-01-01\n"}
        run_ingest(con, tmp_path, files, SNAPSHOT_CRM)
    withheld = con.execute(
        "select source_file, row_number, raw_value from withheld_values order by all"
    ).fetchall()
    assert withheld == [
        ("drops/crm_1.csv", 1, "b.x.com"),
        ("drops/crm_3.csv", 1, "b.x.com"),
        ("drops/crm_4.csv", 1, "b.x.com"),
    ]
    bo = con.execute(
        "select source_file, first_name, email from raw_customers order by all"
    ).fetchall()
    assert bo == [
        ("drops/crm_1.csv", "Bo", None),
        ("drops/crm_3.csv", "Bo", None),
        ("drops/crm_4.csv", "Bo", None),
    ]


def test_old_snapshot_exports_keep_only_what_staging_can_still_choose(con, tmp_path, monkeypatch):
    """Of a snapshot source's exports older than the last two, only the rows staging can still
    reach stay in raw_customers; staging gives what it gives with every version kept, also
    after the latest export is re-delivered broken and rejected (the previous export takes
    over)."""
    from ccv.ingest import load

    pruned = snapshot_nights(con, tmp_path / "pruned")
    monkeypatch.setattr(load, "prune_superseded_snapshot_rows", lambda con: 0)
    with duckdb.connect() as everything:
        everything.execute("set TimeZone = 'UTC'")
        kept = snapshot_nights(everything, tmp_path / "kept")

    (night4, files4), (night5, files5) = pruned
    assert night4 == kept[0][0] and night5 == kept[1][0]
    assert [r[:3] for r in night4] == [
        ("1", "Anne", False),
        ("2", "Bob", True),
        ("3", "Cy", False),
        ("4", "Di", False),
    ]
    assert [r[:3] for r in night5] == [
        ("1", "Anne", False),
        ("2", "Bob", True),
        ("3", "Cy", False),
    ]  # Di was only ever in the rejected export; Cy's and Anne's versions are unchanged
    # every row of crm_1 and crm_2 is the first delivery of a version (each record changed
    # between them), which a CRM may send again: all stay (what goes: test_staging.py,
    # test_old_exports_keep_one_row_of_a_record_sent_unchanged)
    assert files4 == {
        "drops/crm_1.csv": 3,
        "drops/crm_2.csv": 3,
        "drops/crm_3.csv": 2,
        "drops/crm_4.csv": 3,
    }
    assert kept[0][1] == {
        "drops/crm_1.csv": 3,
        "drops/crm_2.csv": 3,
        "drops/crm_3.csv": 2,
        "drops/crm_4.csv": 3,
    }
    assert "drops/crm_4.csv" not in files5


def test_pruning_follows_stagings_choice_of_version():
    """Staging ranks versions by VERSION_ORDER; pruning picks a record's best old row with
    `arg_max` over BEST, which must choose the same row: ties on the update time, missing
    update times, loads, files and rows in every combination."""
    import itertools
    from pathlib import Path

    from ccv.ingest.snapshots import BEST, VERSION_ORDER

    staging = Path(__file__).parents[1] / "sql" / "staging" / "stg_customers.sql"
    assert f"order by {VERSION_ORDER}" in staging.read_text(encoding="utf-8")
    values = itertools.product(
        [None, "2026-01-01", "2026-02-01"], ["2026-11-01", "2026-11-02"], [1, 2], [1, 2]
    )
    with duckdb.connect() as con:
        con.execute(
            "create table rows as select row_number() over () as id, * from (values "
            + ", ".join(
                f"(cast({'null' if u is None else repr(u)} as timestamp), "
                f"timestamp '{loaded}', {file}, {row})"
                for u, loaded, file, row in values
            )
            + ") as v(updated_at, loaded_at, file_rank, row_number)"
        )
        for size in (2, 3, 5, 48):  # records of the first `size` rows, then every 3rd row
            for subset in (f"id <= {size}", f"id % 3 = {size % 3}"):
                by_order = con.execute(
                    f"select id from rows where {subset} order by {VERSION_ORDER} limit 1"
                ).fetchall()
                by_max = con.execute(f"select arg_max(id, {BEST}) from rows where {subset}")
                assert by_max.fetchall() == by_order, subset


def test_old_snapshot_exports_keep_only_quarantined_rows_not_delivered_again(con, tmp_path):
    """A bad row re-sent in every export stays quarantined once, from the last two exports;
    a fault fixed at the source, or superseded by a later delivery of its record, goes with its
    export once that export is old; a record's last delivery and a bad row sent once stay."""
    (tmp_path / "drops").mkdir()
    always = ["1,Ann,a@x.com,,2026-01-01", "1,Ann again,a@x.com,,2026-01-01", ",Nobody,n@x.com,,"]
    exports = [
        # 5's update time is no time (fixed in export 2); 6 is bad twice, then leaves
        [*always, ",Once,o@x.com,,", "5,Eve,e@x.com,,never", "6,Fay,f@x.com,,never"],
        [*always, "5,Eve,e@x.com,,2026-02-01", "6,Fay,f@x.com,,never"],
        [*always, "5,Eve,e@x.com,,2026-02-01"],
        [*always, "5,Eve,e@x.com,,2026-02-01"],
    ]
    results = []
    for night, rows in enumerate(exports, start=1):
        files = {f"drops/crm_{night}.csv": HEAD + "\n".join(rows) + "\n"}
        results += run_ingest(con, tmp_path, files, SNAPSHOT_CRM)
    kept = con.execute(
        "select source_file, row_number, rule, raw_value from quarantine order by all"
    ).fetchall()
    assert kept == [
        ("drops/crm_1.csv", 4, "required", None),  # Once: never sent again
        ("drops/crm_2.csv", 5, "parse_timestamp", "never"),  # Fay's last delivery
        ("drops/crm_3.csv", 2, "duplicate_id", "1"),
        ("drops/crm_3.csv", 3, "required", None),
        ("drops/crm_4.csv", 2, "duplicate_id", "1"),
        ("drops/crm_4.csv", 3, "required", None),
    ]
    # every night's accounting is still in the log
    logged = con.execute(
        "select source_file, rows_read, rows_loaded, rows_quarantined from ingest_log "
        "where status = 'loaded' order by 1"
    ).fetchall()
    assert logged == [
        ("drops/crm_1.csv", 6, 1, 5),
        ("drops/crm_2.csv", 5, 2, 3),
        ("drops/crm_3.csv", 4, 2, 2),
        ("drops/crm_4.csv", 4, 2, 2),
    ]
    assert_accounted(results)


def test_delta_sources_never_delete(con, tmp_path):
    source = CRM | {"path": "drops/crm_*.csv"}
    (tmp_path / "drops").mkdir()
    run_ingest(con, tmp_path, {"drops/crm_1.csv": "id,first,mail,dob\n1,Ann,,\n"}, source)
    run_ingest(con, tmp_path, {"drops/crm_2.csv": "id,first,mail,dob\n2,Bo,,\n"}, source)
    build_staging(con)
    assert con.execute("select count(*) from stg_customers where not is_deleted").fetchone() == (2,)


def test_consent_file_and_crm_opt_in_flags_both_become_consent_events(con, tmp_path):
    crm = CRM | {
        "columns": CRM["columns"] | {"email_opt_in": "news", "updated_at": "upd"},
        "consents_from_opt_in": True,
    }
    files = {
        "crm.csv": "id,first,mail,dob,news,upd\n1,Ann,a@x.com,,yes,2026-01-02T03:04:05\n",
        "consents.csv": _consent_file(),
    }
    results = run_ingest(con, tmp_path, files, crm, CONSENTS)
    assert_accounted(results)
    assert [(r.rows_loaded, r.rows_quarantined) for r in results] == [(1, 0), (3, 2)]
    assert {q[3] for q in quarantine(con)} == {"unknown_channel", "parse_boolean"}
    build_staging(con)
    events = con.execute(
        "select consent_id, customer_source, customer_record_id, channel, is_opt_in, method "
        "from stg_consents order by all"
    ).fetchall()
    assert events == [
        ("1:email", "crm", "1", "email", True, "crm_opt_in_flag"),
        ("C1", "crm", "1", "sms", True, "web_form"),
        ("C2", "crm", "1", "sms", False, "web_form"),
        ("C3", "crm", None, "postal", False, "call_centre"),
    ]


def _consent_file() -> str:
    from pathlib import Path

    return (Path(__file__).parent / "data" / "consent_events.csv").read_text(encoding="utf-8")


WEB_WITH_ITEMS = WEB | {
    "path": "orders.jsonl",
    "lines_from": "items",
    "line_columns": {"sku": "sku", "quantity": "qty", "unit_price": "price"},
}


def order(order_id: str, items) -> str:
    record = {"id": order_id, "at": "2025-06-01T10:00:00Z", "status": "completed", "total": 9}
    return json.dumps(record | {"items": items})


def test_nested_items_become_order_lines_and_a_bad_line_quarantines_its_order(con, tmp_path):
    lines = [
        order(
            "W1", [{"sku": "A", "qty": 2, "price": 1.5, "colour": "red"}, {"sku": "B", "qty": 1}]
        ),
        order("W2", [{"sku": "C", "qty": 0, "price": 3}]),  # quantity 0
        order("W3", "not a list"),
        order("W4", []),
    ]
    files = {"orders.jsonl": "\n".join(lines) + "\n"}
    results = run_ingest(con, tmp_path, files, CRM | {"path": "none.csv"}, WEB_WITH_ITEMS)
    web = results[1]
    assert_accounted(results)
    assert (web.rows_loaded, web.rows_quarantined) == (2, 2)
    assert {(q[2], q[3]) for q in quarantine(con)} == {
        ("items[1].quantity", "non_positive_quantity"),
        ("items", "malformed_lines"),
    }
    build_staging(con)
    rows = con.execute(
        "select order_key, line_number, sku, quantity, line_amount, extra from stg_order_lines "
        "order by 1, 2"
    ).fetchall()
    assert [r[:5] for r in rows] == [("web:W1", 1, "A", 2, 3), ("web:W1", 2, "B", 1, None)]
    assert json.loads(rows[0][5])["colour"] == "red"


def test_order_line_files_number_lines_per_order_and_join_their_orders_source(con, tmp_path):
    lines_source = {
        "name": "till_lines",
        "kind": "order_lines",
        "path": "lines.csv",
        "format": "csv",
        "order_source": "web",
        "columns": {"order_id": "receipt", "sku": "sku", "quantity": "qty", "line_amount": "amt"},
    }
    files = {
        "orders.jsonl": order("W1", []) + "\n",
        "lines.csv": "receipt,sku,qty,amt\nW1,A,1,2.00\nW1,B,2,4.00\nW1,C,-1,1\n",
    }
    web = WEB_WITH_ITEMS | {"lines_from": None, "line_columns": {}}
    results = run_ingest(con, tmp_path, files, CRM | {"path": "none.csv"}, web, lines_source)
    assert_accounted(results)
    build_staging(con)
    assert con.execute(
        "select order_key, line_number, sku, line_amount from stg_order_lines order by 2"
    ).fetchall() == [("web:W1", 1, "A", 2), ("web:W1", 2, "B", 4)]
    assert [q[3] for q in quarantine(con)] == ["non_positive_quantity"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"load": "snapshot", "kind": "orders", "columns": {"order_id": "id"}, "formats": {}},
            "load: only for",
        ),
        ({"lines_from": "items"}, "lines_from: only for sources of kind 'orders'"),
        ({"csv": {"decimal_comma": True, "thousands": ","}}, "also the decimal mark"),
        ({"dayfirst": ["nope"]}, "dayfirst: unknown canonical field"),
        ({"phone_region": "gb"}, "phone_region"),
    ],
)
def test_new_source_options_are_validated_with_the_key_named(tmp_path, override, message):
    from ccv.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, CRM | override)


def test_order_lines_need_their_orders_source(tmp_path):
    from ccv.config import ConfigError

    lines = {
        "name": "lines",
        "kind": "order_lines",
        "path": "l.csv",
        "format": "csv",
        "columns": {"order_id": "o"},
    }
    with pytest.raises(ConfigError, match="order_source: required"):
        make_config(tmp_path, CRM, lines)
    with pytest.raises(ConfigError, match="is not a configured source of kind 'orders'"):
        make_config(tmp_path, CRM, lines | {"order_source": "crm"})


@pytest.mark.parametrize("stream_min_bytes", [None, 0], ids=["copying", "streaming"])
def test_an_erased_person_is_quarantined_without_data_on_both_paths(
    con, tmp_path, monkeypatch, stream_min_bytes
):
    """Rows of a person on the suppression list never reach raw tables, whichever path a file
    takes; their quarantine row carries no raw value or record."""
    import ccv.ingest.streaming as streaming
    from ccv.ingest.load import ingest_file
    from ccv.privacy.suppression import email_hashes
    from ccv.warehouse.schema import ensure_schema

    if stream_min_bytes is not None:
        monkeypatch.setattr(streaming, "STREAM_MIN_BYTES", stream_min_bytes)
    (tmp_path / "crm.csv").write_text(
        "id,first,mail,dob\n1,Ann,ann@x.com,\n2,Bo,BO@X.com ,\n3,Cy,bad,\n2,Bo,b@x.com,\n"
    )
    config = make_config(tmp_path, CRM)
    ensure_schema(con)
    suppressed = {h for h, _ in email_hashes(["bo@x.com"])}
    result = ingest_file(
        con, config, config.source("crm"), tmp_path / "crm.csv", "r", NOW, suppressed=suppressed
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    assert con.execute("select source_record_id from raw_customers order by 1").fetchall() == [
        ("1",),
        ("2",),  # the second id 2 is no duplicate: the first one was erased
        ("3",),  # loaded without its e-mail
    ]
    assert quarantine(con) == [(2, None, "email", "erased", None)]
    assert con.execute(
        "select row_number, field, rule, raw_value from withheld_values"
    ).fetchall() == [(3, "email", "email_syntax", "bad")]
    assert con.execute("select raw_record from quarantine where rule = 'erased'").fetchall() == [
        (None,)
    ]


@pytest.mark.parametrize(
    "text",
    ['{"a":1}', ' \t{"a":1} ', "{}", "[1]", " [ ]", '"{}"', "1", "null", "", " ", "\x0c{}",
     "\u00a0{}", "/*c*/{}", '{"a":1} x', '{"a":1,}', '{"a":NaN}', "{a:1}", None],
)  # fmt: skip
def test_json_kind_check_agrees_with_json_type(con, text):
    """`is_json` (one parse) says what `json_type(try_cast(... as json))` (two) would say."""
    from ccv.ingest.readers import is_json

    for kind in ("OBJECT", "ARRAY"):
        fast, slow = con.execute(
            f"select {is_json('t', kind)}, coalesce(json_type(try_cast(t as json)) = ?, false) "
            "from (select ?::varchar as t)",
            [kind, text],
        ).fetchone()
        assert fast == slow, (kind, text)


def test_a_file_is_hashed_again_only_when_its_size_or_modification_time_changed(
    con, tmp_path, monkeypatch
):
    """A night skips the files it loaded before without reading them whole: the hash logged
    with a file's size and modification time stands while both are unchanged."""
    import os
    import time

    import ccv.ingest.file_versions as file_versions

    hashed = []
    real_hash = file_versions.file_hash
    monkeypatch.setattr(file_versions, "file_hash", lambda p: hashed.append(p.name) or real_hash(p))
    path = tmp_path / "crm.csv"
    path.write_text("id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n")
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(an_hour_ago, an_hour_ago))
    config = make_config(tmp_path, CRM)
    assert ingest(con, config, "r1", NOW)[0].status == "loaded"
    assert ingest(con, config, "r2", NOW)[0].status == "unchanged"
    assert hashed == ["crm.csv"]  # the second night trusted the logged size and time

    # other content of the same size, written later: read again
    path.write_text("id,first,mail,dob\n1,Ann,b@x.com,01/01/1990\n")
    os.utime(path, ns=(an_hour_ago + 10**9, an_hour_ago + 10**9))
    assert ingest(con, config, "r3", NOW)[0].status == "replaced"
    assert len(hashed) == 2
    assert con.execute("select email from raw_customers").fetchall() == [("b@x.com",)]

    # modified moments before it was hashed: it could still change within the same tick of
    # the file system's clock, so the next night hashes it again
    os.utime(path)
    assert ingest(con, config, "r4", NOW)[0].status == "unchanged"
    assert ingest(con, config, "r5", NOW)[0].status == "unchanged"
    assert len(hashed) == 4
