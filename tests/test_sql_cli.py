"""`ccv sql` and `ccv shell`: analysts query the published warehouse read-only."""

import csv
import io
import re
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ccv.cli import app

ROOT = Path(__file__).resolve().parents[1]


def query_all(config_path: Path, sql: str) -> list[tuple]:
    db = config_path.parent / "warehouse" / "ccv.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def query_one(config_path: Path, sql: str) -> tuple:
    return query_all(config_path, sql)[0]


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


def test_a_wide_result_prints_one_block_per_row(config_path):
    """customer_360's ~60 columns squeezed into a table printed empty columns: each row is a
    block of "column | value" lines instead, every value readable."""
    result = CliRunner().invoke(
        app,
        ["sql", "select * from customer_360 order by customer_id limit 2", "-c", str(config_path)],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    first = query_one(
        config_path,
        "select customer_id, lifetime_revenue from customer_360 order by customer_id limit 1",
    )
    assert "-[ row 1 ]-" in result.output and "-[ row 2 ]-" in result.output
    lines = result.output.splitlines()
    assert any(re.fullmatch(rf"customer_id +\| {first[0]}", line) for line in lines)
    assert any(re.fullmatch(rf"lifetime_revenue +\| {first[1]}", line) for line in lines)
    # a narrow result stays a table
    narrow = CliRunner().invoke(app, ["sql", "select 1 as n", "-c", str(config_path)])
    assert "┃ n ┃" in narrow.output and "-[ row" not in narrow.output


def test_sql_writes_csv_for_other_tools(config_path):
    result = CliRunner().invoke(
        app,
        [
            "sql",
            "select customer_id, email from customers order by customer_id",
            "--format",
            "csv",
            "--max-rows",
            "0",
            "-c",
            str(config_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    expected = query_all(config_path, "select customer_id, email from customers order by 1")
    assert rows[0] == ["customer_id", "email"]
    assert rows[1:] == [[c, "" if e is None else e] for c, e in expected]  # every row, NULL empty
    bad = CliRunner().invoke(app, ["sql", "select 1", "--format", "xml", "-c", str(config_path)])
    assert bad.exit_code == 2 and "use table or csv" in bad.output


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
