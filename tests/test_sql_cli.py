"""`ccv sql` and `ccv shell`: analysts query the published warehouse read-only."""

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccv.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_path(published_sample) -> Path:
    return published_sample


def test_sql_prints_the_result(config_path):
    result = CliRunner().invoke(
        app, ["sql", "select count(*) as n_customers from customers", "-c", str(config_path)]
    )
    assert result.exit_code == 0, result.output
    assert "n_customers" in result.output


def test_sql_prints_values_as_they_are(config_path):
    """A value holding "[...]" (a product name, a survey comment, a config section) is printed
    verbatim, not taken for a style tag and dropped."""
    query = "select '[Sale] Shoes' as product, '[bold]x[/]' as note"
    result = CliRunner().invoke(app, ["sql", query, "-c", str(config_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[Sale] Shoes" in result.output and "[bold]x[/]" in result.output


def test_sql_cannot_write(config_path):
    result = CliRunner().invoke(app, ["sql", "delete from customers", "-c", str(config_path)])
    assert result.exit_code == 1 and "read-only" in result.output.lower()


def test_shell_reads_queries_until_end_of_input(config_path):
    result = CliRunner().invoke(
        app, ["shell", "-c", str(config_path)], input="select 41 + 1 as answer;\nselect nope;\n"
    )
    assert result.exit_code == 0
    assert "42" in result.output and "SQL error" in result.output


def test_sql_before_any_run_says_what_to_do(tmp_path):
    shutil.copy(ROOT / "ccv.toml", tmp_path / "ccv.toml")
    result = CliRunner().invoke(app, ["sql", "select 1", "-c", str(tmp_path / "ccv.toml")])
    assert result.exit_code == 1 and "ccv run" in result.output
