"""Input files keep their identity when the project or the data moves: nothing loads twice."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ccv.cli import app
from ccv.config import load_config
from ccv.ingest.file_names import file_tables, rename_files
from ccv.ingest.load import ingest
from ccv.pipeline import run_nightly
from tests.conftest import NOW, copy_of_published, make_config, make_project, night_without_report
from tests.test_incremental import outcome
from tests.test_ingest import CRM, snapshot_tables

ROWS = "id,first,mail,dob\n1,Ann,a@x.com,01/01/1990\n2,Bo,bad,\n"
MORE = "id,first,mail,dob\n3,Cy,c@x.com,\n"


def file_names(db: Path) -> dict[str, set[str]]:
    """Every table that names files, with the names it holds."""
    with duckdb.connect(str(db), read_only=True) as con:
        return file_names_of(con)


def file_names_of(con) -> dict[str, set[str]]:
    return {
        t: {r[0] for r in con.execute(f"select distinct source_file from {t}").fetchall()}
        for t in file_tables(con)
    }


def statuses(db: Path, run: int) -> dict[str, str]:
    """File → status in the `run`-th run (1 = first) of the warehouse."""
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(
            con.execute(
                """
                select source_file, status from ingest_log
                where run_id = (select run_id from runs order by started_at limit 1 offset ?)
                """,
                [run - 1],
            ).fetchall()
        )


OWN_VIEWS = "select count(*) as n from duckdb_views() where temporary and not internal"
"""How many views a `ccv sql` session made of its own (`versions.history_views`)."""


def ccv_sql(config_path: Path, query: str) -> list[str]:
    """`ccv sql QUERY` as CSV: its output lines (the header first)."""
    result = CliRunner().invoke(app, ["sql", query, "--format", "csv", "-c", str(config_path)])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_files_inside_the_project_are_named_relative_to_it(published_sample):
    config_path = published_sample
    names = file_names(load_config(config_path).resolve("warehouse/ccv.duckdb"))
    assert "data/sample/crm_eshop_accounts.csv" in names["raw_customers"]
    assert all(not n.startswith("/") for table in names.values() for n in table if n)


def test_moving_the_whole_project_loads_nothing_again(tmp_path, published_sample):
    config_path = copy_of_published(published_sample, tmp_path / "before")
    before = outcome(config_path)
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(config_path.parent, moved)
    night_without_report(load_config(moved / "ccv.toml"))
    db = load_config(moved / "ccv.toml").resolve("warehouse/ccv.duckdb")
    assert set(statuses(db, 2).values()) == {"unchanged"}
    assert outcome(moved / "ccv.toml") == before


def test_ccv_sql_reads_the_history_of_a_moved_project_where_it_is_now(tmp_path, published_sample):
    """The `<mart>_history` views a night stores name the folder it ran in; after the project
    moves, `ccv sql` (and `ccv shell`) still read the snapshots where they are now."""
    config_path = copy_of_published(published_sample, tmp_path / "before")
    night_without_report(load_config(config_path))  # its views name tmp_path / "before"
    # where the night ran, a session reads the stored views and makes none of its own
    assert ccv_sql(config_path, OWN_VIEWS) == ["n", "0"]
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(config_path.parent, moved)
    db = load_config(moved / "ccv.toml").resolve("warehouse/ccv.duckdb")
    query = "select count(*) as n from customer_360_history"
    with duckdb.connect(str(db), read_only=True) as con:
        customers = con.execute("select count(*) from customer_360").fetchall()[0][0]
        stale = re.escape(str(tmp_path / "before"))
        with pytest.raises(duckdb.IOException, match=stale):  # the view the night stored
            con.execute(query).fetchall()
    # one snapshot: both nights have the sample's as-of date, and the second replaced it
    assert ccv_sql(moved / "ccv.toml", query) == ["n", str(customers)]
    own = ccv_sql(moved / "ccv.toml", OWN_VIEWS)
    assert own[0] == "n" and int(own[1]) >= 1


def test_a_warehouse_folder_linked_to_another_disk_keeps_its_stored_history_views(
    tmp_path, published_sample
):
    """`warehouse/` as a link to a folder on another disk: a session on it reads the views the
    night stored (they name the folder as the config does) and makes none of its own."""
    config_path = copy_of_published(published_sample, tmp_path / "p")
    shutil.move(config_path.parent / "warehouse", tmp_path / "disk")
    (config_path.parent / "warehouse").symlink_to(tmp_path / "disk")
    night_without_report(load_config(config_path))
    assert ccv_sql(config_path, OWN_VIEWS) == ["n", "0"]
    assert int(ccv_sql(config_path, "select count(*) from customer_360_history")[1]) > 0


def test_an_upgraded_warehouse_renames_absolute_names_and_loads_nothing_again(
    tmp_path, published_sample
):
    # warehouses from before relative names recorded every file by its absolute path
    config_path = copy_of_published(published_sample, tmp_path / "p")
    config = load_config(config_path)
    db = config.resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db)) as con:
        names = con.execute("select distinct source, source_file from ingest_log").fetchall()
        rename_files(con, [(s, n, f"{config.base_dir}/{n}") for s, n in names])
        assert all(n.startswith("/") for t in file_names_of(con).values() for n in t if n)
    night_without_report(load_config(config_path))
    assert set(statuses(db, 2).values()) == {"unchanged"}
    after = file_names(db)
    assert all(not n.startswith("/") for table in after.values() for n in table if n)
    with duckdb.connect(str(db), read_only=True) as con:
        # no row loaded twice
        assert (
            con.execute("select count(*) from raw_customers").fetchone()[0]
            == con.execute(
                "select sum(rows_loaded) from stg_ingest_files where kind = 'customers'"
            ).fetchone()[0]
        )


def test_a_file_outside_the_project_that_moved_keeps_its_rows(con, tmp_path):
    outside = tmp_path / "mount"
    (outside / "a").mkdir(parents=True)
    (outside / "a" / "crm_1.csv").write_text(ROWS)
    project = tmp_path / "project"
    project.mkdir()
    source = CRM | {"path": str(outside / "*" / "crm_*.csv")}
    config = make_config(project, source)
    first = ingest(con, config, "run-1", NOW)
    assert [(r.source_file, r.status) for r in first] == [(str(outside / "a/crm_1.csv"), "loaded")]
    loaded = snapshot_tables(con)

    # the drop moves to another folder the glob matches; a new drop arrives beside it
    (outside / "b").mkdir()
    shutil.move(outside / "a" / "crm_1.csv", outside / "b" / "crm_1.csv")
    (outside / "b" / "crm_2.csv").write_text(MORE)
    second = ingest(con, config, "run-2", NOW)
    assert [(Path(r.source_file).parent.name, r.status, r.rows_loaded) for r in second] == [
        ("b", "moved", 0),
        ("b", "loaded", 1),
    ]
    assert "moved from" in second[0].message and "a/crm_1.csv" in second[0].message
    # the moved file's rows (loaded and quarantined) now name it where it is
    names = file_names_of(con)
    assert str(outside / "a/crm_1.csv") not in set().union(*names.values())
    renamed = {
        t: [r for r in rows if r[:2] != ("crm", str(outside / "b/crm_2.csv"))]
        for t, rows in snapshot_tables(con).items()
    }
    assert renamed == {
        t: [
            tuple(
                str(outside / "b/crm_1.csv") if v == str(outside / "a/crm_1.csv") else v for v in r
            )
            for r in rows
        ]
        for t, rows in loaded.items()
    }
    # and the next night knows it: unchanged
    third = ingest(con, config, "run-3", NOW)
    assert [r.status for r in third] == ["unchanged", "unchanged"]


def test_a_copy_is_not_a_move(con, tmp_path):
    (tmp_path / "drops").mkdir()
    (tmp_path / "drops" / "crm_1.csv").write_text(ROWS)
    config = make_config(tmp_path, CRM | {"path": "drops/crm_*.csv"})
    ingest(con, config, "run-1", NOW)
    # the same content under a second name, while the first file is still there: a new file
    shutil.copy(tmp_path / "drops" / "crm_1.csv", tmp_path / "drops" / "crm_2.csv")
    results = ingest(con, config, "run-2", NOW)
    assert [(r.source_file, r.status) for r in results] == [
        ("drops/crm_1.csv", "unchanged"),
        ("drops/crm_2.csv", "loaded"),
    ]


def test_a_moved_file_in_a_nightly_run_gives_what_a_rebuild_gives(tmp_path):
    # staged tables keep the file names too: after the move they name the new place
    config_path = make_project(tmp_path / "p")
    data = config_path.parent / "data" / "sample"
    outside = tmp_path / "mount" / "v1"
    outside.mkdir(parents=True)
    shutil.move(data / "store_orders.csv", outside / "store_orders.csv")
    text = config_path.read_text().replace(
        '"data/sample/store_orders.csv"', f'"{tmp_path}/mount/*/store_orders.csv"'
    )
    assert text != config_path.read_text()
    config_path.write_text(text)
    night_without_report(load_config(config_path))
    (tmp_path / "mount" / "v1").rename(tmp_path / "mount" / "v2")
    night_without_report(load_config(config_path))
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    assert statuses(db, 2)[f"{tmp_path}/mount/v2/store_orders.csv"] == "moved"
    names = file_names(db)
    assert f"{tmp_path}/mount/v2/store_orders.csv" in names["stg_orders"]
    assert not any("mount/v1" in n for table in names.values() for n in table if n)

    full = tmp_path / "full"
    shutil.copytree(config_path.parent / "data", full / "data")
    shutil.copy(config_path, full / "ccv.toml")
    run_nightly(load_config(full / "ccv.toml"), full_refresh=True)
    assert outcome(config_path) == outcome(full / "ccv.toml")
