"""`ccv run` as an operator runs it: a process of its own, through Prefect's temporary server."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
from typer.testing import CliRunner

import flows.nightly
from ccv import cli
from tests.conftest import make_project


def test_ccv_run_publishes_and_ends_without_shutdown_noise(tmp_path):
    """The run's own output ends the log: no screen of nanobind "leaked" lines from the
    interpreter's teardown after it (Prefect's daemon threads keep the duckdb module alive)."""
    config = make_project(tmp_path / "project")
    env = os.environ | {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ccv")), "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=config.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report:" in done.stdout and "customers" in done.stdout
    assert "leaked" not in done.stderr and "nanobind" not in done.stderr, done.stderr[-2000:]
    # Prefect's own exit handlers still ran and logged before stderr was closed
    assert "Stopping temporary server" in done.stderr


def test_a_disk_that_fills_up_mid_night_is_named(tmp_path, monkeypatch):
    """The night's DuckDB writes hit a full disk: the operator reads that, and what to do, not
    a traceback."""

    def full(**_):
        raise duckdb.IOException('Could not write file "ccv.duckdb": No space left on device')

    monkeypatch.setattr(cli, "_quiet_teardown", lambda: None)  # not in the test process
    monkeypatch.setattr(flows.nightly, "nightly", full)
    config = make_project(tmp_path / "project")
    result = CliRunner().invoke(cli.app, ["run", "-c", str(config)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "run failed, nothing published: the disk filled up" in output
    assert "keep_versions" in output
