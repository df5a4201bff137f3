"""Nightly operations: one run at a time, publish-or-nothing, crash safety, rollback, history.

Runs go through `ccv.pipeline` without Prefect (the flow calls the same functions); crashes are
real SIGKILLs of a child process at each stage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import flows.nightly
from ccv import cli, pipeline
from ccv.cli import app
from ccv.config import load_config
from ccv.warehouse import models, versions
from ccv.warehouse.lock import WarehouseLock
from tests.conftest import copy_of_published, make_project

ROOT = Path(__file__).resolve().parents[1]
NEW_RECEIPT = "R9999999,S01,,15/10/2026 12:00,SALE,10.00,0.00,10.00,GBP\n"

CRASHING_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from ccv import pipeline
    from ccv.config import load_config
    from ccv.ingest import load
    from ccv.warehouse import versions

    config, kill_at = load_config(sys.argv[1]), sys.argv[2]

    def die(point):
        if point == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    ingest_file, calls = load.ingest_file, []
    def ingest_file_then_die(*args, **kwargs):
        calls.append(1)
        die("mid_ingest" if len(calls) == 3 else "")
        return ingest_file(*args, **kwargs)
    load.ingest_file = ingest_file_then_die

    switch = versions._switch_current
    def die_before_switch(layout, run_id):
        die("before_switch")
        switch(layout, run_id)
    versions._switch_current = die_before_switch

    with pipeline.run_context(config) as run:
        die("start")
        pipeline.ingest_stage(run, config)
        die("after_ingest")
        pipeline.resolve_stage(run, config)
        die("after_resolve")
        pipeline.build_stage(run, config)
        die("after_build")
        pipeline.publish_stage(run, config)
    """
)


def ccv_run(monkeypatch, config_path: Path):
    """`ccv run -c config_path` as an operator runs it, its flow replaced by the same stages
    without a Prefect server (`pipeline.run_nightly`); the CLI's result."""
    monkeypatch.setattr(cli, "_quiet_teardown", lambda: None)  # not in the test process
    monkeypatch.setattr(
        flows.nightly,
        "nightly",
        lambda config_path, **options: pipeline.run_nightly(load_config(config_path)),
    )
    return CliRunner().invoke(app, ["run", "-c", str(config_path)], env={"COLUMNS": "300"})


def add_receipt(config_path: Path) -> None:
    """A new till receipt arrives: the next night has something new to publish."""
    with (config_path.parent / "data" / "sample" / "store_orders.csv").open("a") as fh:
        fh.write(NEW_RECEIPT)


def published_state(config_path: Path) -> dict[str, str]:
    """Every published file (through the user-facing links) → its SHA-256."""
    layout = versions.Layout.from_config(load_config(config_path))
    state = {"current": os.readlink(layout.current)}
    for path in sorted(Path(os.path.realpath(layout.current)).rglob("*")):
        if path.is_file():
            state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def tables(config_path: Path) -> dict[str, list[tuple]]:
    """The published business tables, ordered, without run ids and timestamps."""
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            "customer_360": con.execute("select * from customer_360 order by all").fetchall(),
            "customer_xref": con.execute(
                "select source, source_record_id, customer_id from customer_xref order by all"
            ).fetchall(),
            "rfm_scores": con.execute("select * from rfm_scores order by all").fetchall(),
            "orders": con.execute("select * from orders order by all").fetchall(),
        }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, published_sample) -> dict[str, list[tuple]]:
    """The tables after two uninterrupted nights: the sample, then the sample plus a receipt."""
    config_path = copy_of_published(published_sample, tmp_path_factory.mktemp("x") / "p")
    add_receipt(config_path)
    pipeline.run_nightly(load_config(config_path))
    return tables(config_path)


@pytest.mark.parametrize(
    "kill_at",
    ["start", "mid_ingest", "after_ingest", "after_resolve", "after_build", "before_switch"],
)
def test_killed_run_changes_nothing_published_and_next_run_recovers(
    tmp_path, published_sample, uninterrupted, kill_at
):
    config_path = copy_of_published(published_sample, tmp_path / "p")
    before = published_state(config_path)
    add_receipt(config_path)

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(config_path), kill_at],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # analysts still see exactly the previous night, byte for byte
    assert published_state(config_path) == before
    # the dead run's lock does not block the next night, which publishes what it would have
    pipeline.run_nightly(load_config(config_path))
    assert tables(config_path) == uninterrupted


def test_a_run_without_room_for_its_copy_refuses_before_writing_anything(
    tmp_path, monkeypatch, published_sample
):
    """A disk that cannot hold another warehouse of the published one's size: the run says so,
    with the sizes and the way out, before copying; the published version is untouched and the
    next run, with room, goes ahead."""
    config_path = copy_of_published(published_sample, tmp_path / "p")
    config = load_config(config_path)
    before = published_state(config_path)
    layout = versions.Layout.from_config(config)
    (published,) = versions.published_versions(layout)
    size = layout.db(published).stat().st_size
    real = shutil.disk_usage
    monkeypatch.setattr(
        versions.shutil, "disk_usage", lambda path: real(path)._replace(free=size - 1)
    )
    with pytest.raises(versions.VersionError) as info:
        pipeline.run_nightly(config)
    message = str(info.value)
    assert "not enough free disk space" in message and "keep_versions" in message
    assert published_state(config_path) == before
    folders = sorted(p.name for p in layout.versions_dir.iterdir() if p.name != ".lock")
    assert folders == sorted(["current", published])  # no half-made version left behind
    monkeypatch.undo()
    assert pipeline.run_nightly(config).table_rows["customers"] > 0


def test_versions_lists_each_kept_version_with_what_it_holds(tmp_path):
    """`ccv versions` (what an operator picks a rollback target from): every kept version's
    full id, its as-of date, customers, size and whether a night or an erasure made it."""
    config_path = make_project(tmp_path)
    config = load_config(config_path)
    pipeline.run_nightly(config)
    add_receipt(config_path)
    pipeline.run_nightly(config)
    layout = versions.Layout.from_config(config)
    first, second = versions.published_versions(layout)
    with duckdb.connect(str(layout.db(second)), read_only=True) as con:
        ((as_of, customers),) = con.execute(
            "select (select as_of_date from runs where run_id = ?), "
            "(select count(*) from customers)",
            [second],
        ).fetchall()
    args = ["versions", "-c", str(config_path)]
    lines = CliRunner().invoke(app, args, env={"COLUMNS": "60"}).output.splitlines()
    (newest,) = [line for line in lines if second in line]
    assert newest.startswith("* ") and str(as_of) in newest and f"{customers:,}" in newest
    assert newest.endswith("nightly run")
    assert any(line.startswith(f"  {first}") for line in lines)  # kept, not current
    # an erasure publishes a version of its own, and says so
    with duckdb.connect(str(layout.db(second)), read_only=True) as con:
        ((victim,),) = con.execute("select customer_id from customers limit 1").fetchall()
    erased = CliRunner().invoke(
        app, ["forget", "--customer-id", victim, "--yes", "-c", str(config_path)]
    )
    assert erased.exit_code == 0, erased.output
    lines = CliRunner().invoke(app, args).output.splitlines()
    (current,) = [line for line in lines if line.startswith("* ")]
    assert current.endswith("erasure") and f"{customers - 1:,}" in current


def test_forgetting_an_address_nobody_holds_says_so_and_why_versions_go(tmp_path, published_sample):
    config_path = copy_of_published(published_sample, tmp_path / "p")
    args = ["forget", "--email", "nobody@example.invalid", "--yes", "-c", str(config_path)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "0 customer(s)" in output
    assert (
        "nobody in the published warehouse holds that identifier; future loads will quarantine "
        "rows with it; the older versions were removed all the same"
    ) in output


def test_mart_snapshots_older_than_keep_snapshot_days_are_not_carried(tmp_path):
    """[warehouse] keep_snapshot_days = 2: a night publishes its own snapshot and the one of the
    day before; older ones stay only in the older versions (pruned with them)."""
    config_path = make_project(tmp_path)
    text = config_path.read_text(encoding="utf-8")
    assert "keep_snapshot_days = 0 " in text  # the sample config's default, written out
    config_path.write_text(
        text.replace("keep_snapshot_days = 0 ", "keep_snapshot_days = 2 ", 1), encoding="utf-8"
    )
    config = load_config(config_path)
    assert config.warehouse.keep_snapshot_days == 2
    layout = versions.Layout.from_config(config)

    def snapshots() -> list[str]:
        with duckdb.connect(str(layout.db_link), read_only=True) as con:
            rows = con.execute(
                "select distinct snapshot_on::varchar from customer_360_history order by 1"
            ).fetchall()
        return [day for (day,) in rows]

    for day in (1, 2):
        pipeline.run_nightly(config, as_of=dt.date(2026, 10, day))
    assert snapshots() == ["2026-10-01", "2026-10-02"]
    pipeline.run_nightly(config, as_of=dt.date(2026, 10, 3))
    assert snapshots() == ["2026-10-02", "2026-10-03"]
    published = sorted((layout.marts_link / "customer_360").glob("snapshot_on=*"))
    assert [p.name for p in published] == ["snapshot_on=2026-10-02", "snapshot_on=2026-10-03"]


PAUSED_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ccv import pipeline
    from ccv.config import load_config

    config, gate = load_config(sys.argv[1]), Path(sys.argv[2])
    ingest_stage = pipeline.ingest_stage
    def paused(run, config):  # holds the night, lock taken, until the test opens the gate
        gate.with_suffix(".waiting").write_text(run.run_id)
        while not gate.exists():
            time.sleep(0.05)
        return ingest_stage(run, config)
    pipeline.ingest_stage = paused
    pipeline.run_nightly(config)
    """
)


def test_second_run_refuses_while_one_is_running(tmp_path, monkeypatch):
    """Two processes: a night paused in its ingest holds the warehouse; `ccv run` meanwhile
    refuses at once, naming that night, its pid and start time; the first night then
    publishes, and the next one goes ahead."""
    config_path = make_project(tmp_path / "p")
    gate = tmp_path / "gate"
    first = subprocess.Popen(
        [sys.executable, "-c", PAUSED_RUN, str(config_path), str(gate)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = gate.with_suffix(".waiting")
        deadline = time.monotonic() + 120
        while not waiting.exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first night ended"
            time.sleep(0.05)
        running = waiting.read_text()
        result = ccv_run(monkeypatch, config_path)
        assert result.exit_code == 1
        output = " ".join(result.output.split())
        assert "not started" in output and running in output
        assert f"pid {first.pid}" in output and "started 20" in output
    finally:
        gate.touch()
        _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    layout = versions.Layout.from_config(load_config(config_path))
    assert versions.current_run_id(layout) == running  # the first night published
    assert pipeline.run_nightly(load_config(config_path)).table_rows["customers"] > 0


def test_lock_of_a_killed_process_is_released(tmp_path):
    config = load_config(make_project(tmp_path))
    layout = versions.Layout.from_config(config)
    holder = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from ccv.warehouse.lock import WarehouseLock
        with WarehouseLock(Path({str(layout.lock_path)!r}), "doomed"):
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", holder], check=False, timeout=60)
    with WarehouseLock(layout.lock_path, "next-night"):
        pass  # acquired: the stale lock was cleared by the kernel


def test_failed_data_check_publishes_nothing(tmp_path, monkeypatch, published_sample):
    config_path = copy_of_published(published_sample, tmp_path / "p")
    config = load_config(config_path)
    before = published_state(config_path)
    # a check that always finds an offending row
    sql_dir = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql_dir)
    (sql_dir / "checks" / "marts" / "always_fails.sql").write_text("select 1 as offending_row")
    monkeypatch.setattr(models, "SQL_DIR", sql_dir)
    result = ccv_run(monkeypatch, config_path)
    # exits non-zero, naming the failing check and its sample rows
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "run failed, nothing published" in output
    assert "check marts/always_fails failed: 1 offending row(s) {'offending_row': 1}" in output
    assert published_state(config_path) == before
    # the failed run left no version folder behind
    layout = versions.Layout.from_config(config)
    assert versions.published_versions(layout) == [before["current"]]
    assert len([p for p in layout.versions_dir.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


def test_history_rollback_and_open_analyst_sessions(tmp_path):
    import datetime as dt

    config_path = make_project(tmp_path)
    config = load_config(config_path)
    first = pipeline.run_nightly(config, as_of=dt.date(2026, 9, 30))
    db = config.resolve(config.warehouse.path)
    analyst = duckdb.connect(str(db), read_only=True)
    first_360 = analyst.execute("select * from customer_360 order by customer_id").fetchall()

    second = pipeline.run_nightly(config, as_of=dt.date(2026, 10, 31))
    # an open session keeps reading the version it opened; a new session sees the new one
    assert (
        analyst.execute("select * from customer_360 order by customer_id").fetchall() == first_360
    )
    analyst.close()
    with duckdb.connect(str(db), read_only=True) as con:
        snapshots = con.execute(
            "select snapshot_on, count(*) from customer_360_history group by 1 order by 1"
        ).fetchall()
        assert [str(d) for d, _ in snapshots] == ["2026-09-30", "2026-10-31"]
        assert con.execute("select max(as_of_date) from runs").fetchone()[0] == second.as_of

    # `ccv rollback` publishes the version before again; with none before it, it refuses
    rollback = ["rollback", "-c", str(config_path)]
    result = CliRunner().invoke(app, rollback, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"published version {first.run_id} again" in result.output
    with duckdb.connect(str(db), read_only=True) as con:
        assert (
            con.execute("select * from customer_360 order by customer_id").fetchall() == first_360
        )
    result = CliRunner().invoke(app, rollback, env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "rollback refused" in result.output and "no published version before" in result.output
    # and `--to` publishes any kept version, the newer one too
    result = CliRunner().invoke(app, [*rollback, "--to", second.run_id])
    assert result.exit_code == 0, result.output
    assert versions.current_run_id(versions.Layout.from_config(config)) == second.run_id


def keeping_two(tmp_path):
    """The config of a sample project that keeps two published versions, and their layout."""
    config_path = make_project(tmp_path)
    text = config_path.read_text().replace("[warehouse]", "[warehouse]\nkeep_versions = 2")
    config_path.write_text(text)
    config = load_config(config_path)
    return config, versions.Layout.from_config(config)


def test_only_the_newest_versions_are_kept(tmp_path):
    config, layout = keeping_two(tmp_path)
    runs = [pipeline.run_nightly(config).run_id for _ in range(3)]
    assert versions.published_versions(layout) == runs[1:]
    assert versions.current_run_id(layout) == runs[2]
    # the third run set the first version aside and removed it before it ended
    assert sorted(p.name for p in layout.versions_dir.iterdir()) == [".lock", *runs[1:], "current"]


def test_a_version_set_aside_is_never_listed_and_a_cut_short_removal_is_finished(tmp_path):
    """Publishing renames a version no longer kept out of sight in one step, so a run killed
    while removing it (file by file) leaves nothing that `ccv versions` lists or `ccv rollback`
    accepts; the next run removes what is left."""
    config, layout = keeping_two(tmp_path)
    runs = [pipeline.run_nightly(config).run_id for _ in range(2)]
    # as publishing with keep_versions = 1 does, then killed before the removal
    aside = versions.set_aside(dataclasses.replace(layout, keep=1))
    assert [p.name for p in aside] == [versions.REMOVING + runs[0]]
    assert (aside[0] / "ccv.duckdb").exists()  # still on disk, but out of every listing
    assert versions.published_versions(layout) == [runs[1]]
    with pytest.raises(versions.VersionError, match="no published version before"):
        versions.rollback(layout)
    third = pipeline.run_nightly(config).run_id
    assert not aside[0].exists()
    assert versions.published_versions(layout) == [runs[1], third]


def test_a_run_starts_from_an_identical_copy_cloned_where_the_filesystem_can(tmp_path, monkeypatch):
    """`clone_or_copy` gives the same bytes whether the filesystem clones (XFS, Btrfs) or not
    (ext4, tmpfs: a byte copy), and falls back to copying when the clone is refused."""
    import errno

    source = tmp_path / "published.duckdb"
    source.write_bytes(os.urandom(3 << 20))
    how = versions.clone_or_copy(source, tmp_path / "run.duckdb")
    assert how in ("clone", "copy")
    assert (tmp_path / "run.duckdb").read_bytes() == source.read_bytes()

    def refuse(*args):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(versions.fcntl, "ioctl", refuse)
    assert versions.clone_or_copy(source, tmp_path / "other.duckdb") == "copy"
    assert (tmp_path / "other.duckdb").read_bytes() == source.read_bytes()
