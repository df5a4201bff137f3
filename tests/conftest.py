"""Shared fixtures: tiny configs and in-memory warehouses built from inline data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ccv.config import Config, parse_config

NOW = dt.datetime(2026, 11, 1, 2, 0)


def make_config(tmp_path: Path, *sources: dict, **sections) -> Config:
    """A validated config whose relative paths resolve inside tmp_path."""
    return parse_config({"sources": list(sources), **sections}, base_dir=tmp_path)


@pytest.fixture
def con():
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    yield connection
    connection.close()
