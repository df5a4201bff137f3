"""While resolve holds the night's frames, DuckDB gets a quarter of its memory limit (at least
1 GB, at most the limit)."""

from __future__ import annotations

import duckdb
import pytest

from ccv.config import load_config
from ccv.identity import resolve
from ccv.pipeline import run_nightly
from tests.conftest import make_project


def limit(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_setting('memory_limit')").fetchall()[0][0]


@pytest.mark.parametrize(
    ("configured", "beside_frames"),
    [
        ("4GB", "1GB"),
        ("8GiB", "2GiB"),
        ("25%", "6.25%"),  # a share of RAM stays a share
        ("2GB", "1GB"),  # a quarter would be under the floor
        ("500MB", "500MB"),  # never above the configured limit
    ],
)
def test_duckdb_limit_is_a_quarter_beside_the_frames_and_restored_after(configured, beside_frames):
    con = duckdb.connect()
    con.execute(f"set memory_limit = '{configured}'")
    before = limit(con)
    expected = duckdb.connect()
    expected.execute(f"set memory_limit = '{beside_frames}'")
    with resolve.duckdb_beside_frames(con, configured):
        assert limit(con) == limit(expected)
    assert limit(con) == before
    # restored when the frames' work fails too
    with pytest.raises(RuntimeError), resolve.duckdb_beside_frames(con, configured):
        raise RuntimeError("failed while matching")
    assert limit(con) == before


def test_a_night_links_under_the_lowered_limit_and_builds_under_the_configured_one(
    tmp_path, monkeypatch
):
    """The frame-holding part of a real night (`_link_cluster_write`) runs under a quarter of
    `[warehouse] memory_limit`; the golden record after it under the whole limit."""
    config = load_config(make_project(tmp_path))
    seen = {}
    link, golden = resolve._link_cluster_write, resolve.build_golden

    def spy_link(con, *args, **kwargs):
        seen["link"] = limit(con)
        return link(con, *args, **kwargs)

    def spy_golden(con, *args, **kwargs):
        seen["golden"] = limit(con)
        return golden(con, *args, **kwargs)

    monkeypatch.setattr(resolve, "_link_cluster_write", spy_link)
    monkeypatch.setattr(resolve, "build_golden", spy_golden)
    run_nightly(config)
    configured, quarter = duckdb.connect(), duckdb.connect()
    configured.execute(f"set memory_limit = '{config.warehouse.memory_limit}'")
    quarter.execute(
        f"set memory_limit = '{resolve.frames_memory_limit(config.warehouse.memory_limit)}'"
    )
    assert seen == {"link": limit(quarter), "golden": limit(configured)}
