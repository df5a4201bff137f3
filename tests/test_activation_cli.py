"""The marketing and privacy commands as an operator types them."""

import json

import duckdb
from typer.testing import CliRunner

from ccv.cli import app
from ccv.config import load_config
from tests.conftest import copy_of_published


def test_export_subject_access_and_forget_from_the_command_line(tmp_path, published_sample):
    config_path = copy_of_published(published_sample, tmp_path / "p")
    config = load_config(config_path)
    cli = CliRunner()
    args = ["-c", str(config_path)]

    out = tmp_path / "champions.csv"
    result = cli.invoke(
        app, ["export", "--segment", "Champions", "--channel", "email", "--out", str(out), *args]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "excluded" in result.output

    refused = cli.invoke(
        app, ["export", "--where", "1=1; drop table customers", "--channel", "email", *args]
    )
    assert refused.exit_code == 2 and "refused" in refused.output

    with duckdb.connect(str(config.resolve(config.warehouse.path)), read_only=True) as con:
        (email,) = con.execute(
            "select email from customers where email is not null order by customer_id limit 1"
        ).fetchone()
    report = tmp_path / "access.json"
    result = cli.invoke(app, ["subject-access", "--email", email, "--out", str(report), *args])
    assert result.exit_code == 0, result.output
    assert email in report.read_text() and json.loads(report.read_text())

    result = cli.invoke(app, ["forget", "--email", email, "--yes", *args])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(config.resolve(config.warehouse.path)), read_only=True) as con:
        assert con.execute(
            "select count(*) from customers where email = ?", [email]
        ).fetchone() == (0,)

    ambiguous = cli.invoke(app, ["forget", "--email", email, "--phone", "+447400123456", *args])
    assert ambiguous.exit_code == 2
