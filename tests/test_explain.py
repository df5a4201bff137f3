"""`ccv explain`: the waterfall behind every link, and an on-demand comparison of two records."""

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ccv.cli import app
from ccv.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config_path(published_sample) -> Path:
    return published_sample


def one(config_path: Path, sql: str, params: list | None = None):
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchone()


def explain(*args):
    return CliRunner().invoke(app, ["explain", *args])


def test_customer_waterfall_adds_up_to_the_stored_match_weight(config_path):
    customer_id, weight, left = one(
        config_path,
        "select customer_id, match_weight, left_record_id from match_evidence "
        "where first_name_level is not null order by match_weight limit 1",
    )
    result = explain(customer_id, "-c", str(config_path))
    assert result.exit_code == 0, result.output
    assert "prior (share of matching pairs)" in result.output
    assert f"{weight:+.2f}" in result.output  # the total line shows the stored weight
    for field in ("first_name", "last_name", "birth_date", "postcode"):
        assert f"{field}:" in result.output
    assert left in result.output


def test_pair_of_different_people_is_explained_as_kept_apart(config_path):
    a, b = one(
        config_path,
        "select min(source || ':' || source_record_id), max(source || ':' || source_record_id) "
        "from identity_records where record_kind = 'customer' and source = 'eshop_accounts'",
    )
    result = explain("--pair", a, b, "-c", str(config_path))
    assert result.exit_code == 0, result.output
    assert "different customers" in result.output
    assert "p = 0.0" in result.output


def test_pair_in_one_customer_is_explained_as_joined(config_path):
    left, right = one(
        config_path,
        "select left_source || ':' || left_record_id, right_source || ':' || right_record_id "
        "from match_evidence where first_name_level is not null limit 1",
    )
    result = explain("--pair", left, right, "-c", str(config_path))
    assert result.exit_code == 0, result.output
    (customer,) = one(
        config_path,
        "select customer_id from identity_records where source || ':' || source_record_id = ?",
        [left],
    )
    # the customer is named once: "(C1, C1)" read as two customers
    assert f"are the same customer ({customer})" in " ".join(result.output.split())


def test_a_customer_shows_the_values_withheld_from_its_records(config_path):
    customer_id, record, value = one(
        config_path,
        "select x.customer_id, w.source || ':' || w.record_key, w.raw_value "
        "from withheld_values w join customer_xref x "
        "on x.source = w.source and x.source_record_id = w.record_key "
        "where w.field = 'email' order by all limit 1",
    )
    result = explain(customer_id, "-c", str(config_path))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert f"withheld from {record}: email {value!r} (email_syntax" in text


def test_unknown_customer_and_bad_usage(config_path):
    assert explain("Cnope", "-c", str(config_path)).exit_code == 1
    assert explain("-c", str(config_path)).exit_code == 2
