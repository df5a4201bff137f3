"""`ccv resolve` on files it has never seen: column names recognised, ids written as Parquet."""

import pandas as pd
from typer.testing import CliRunner

from ccv.cli import app
from ccv.identity.standalone import guess_mapping


def run(*args):
    return CliRunner().invoke(app, ["resolve", *map(str, args)])


def test_two_unseen_exports_resolve_into_shared_customer_ids(tmp_path):
    shop = tmp_path / "shop.csv"
    shop.write_text(
        "Cust No,Given Name,Surname,E-mail,Mobile\n"
        "A1,Robert,Smith,rob.smith@example.com,07400 123456\n"
        "A2,Jane,Doe,jane@example.com,\n"
    )
    till = tmp_path / "till.csv"
    # semicolons, a phone in another format, an email in other case: the same Robert
    till.write_text("card;name;mail;tel\nL9;SMITH, Bob;ROB.SMITH@EXAMPLE.COM;+44 7400 123456\n")
    out = tmp_path / "ids.parquet"
    result = run(
        shop,
        till,
        "--id",
        "Cust No",
        "--id",
        "card",
        "--map",
        "full_name=name",
        "--map",
        "email=mail",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    ids = pd.read_parquet(out)
    assert list(ids.columns) == ["record_id", "source", "customer_id"]
    by_record = dict(zip(ids["source"] + ":" + ids["record_id"], ids["customer_id"], strict=True))
    assert by_record["shop:A1"] == by_record["till:L9"]  # same email and phone
    assert by_record["shop:A2"] != by_record["shop:A1"]
    assert "3 records → 2 customers" in result.output


def test_missing_id_column_is_a_clear_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    result = run(path, "--id", "customer", "--out", tmp_path / "o.parquet")
    assert result.exit_code == 2
    assert "no id column 'customer'" in result.output


def test_bad_map_names_the_known_fields(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,e\n1,a@b.com\n")
    result = run(path, "--id", "id", "--map", "mail=e", "--out", tmp_path / "o.parquet")
    assert result.exit_code == 2 and "FIELD=COLUMN" in result.output


def test_parquet_input_with_typed_columns(tmp_path):
    path = tmp_path / "crm.parquet"
    pd.DataFrame(
        {"id": [1, 2], "email": ["x@example.com", "x@example.com"], "dob": ["1990-01-01"] * 2}
    ).to_parquet(path)
    out = tmp_path / "o.parquet"
    assert run(path, "--id", "id", "--out", out).exit_code == 0
    ids = pd.read_parquet(out)
    assert ids["record_id"].tolist() == ["1", "2"]  # ids are written as text
    assert ids["customer_id"].nunique() == 1


def test_guess_mapping_keeps_explicit_pairs_and_does_not_reuse_a_column():
    mapping = guess_mapping(["Name", "Email", "Tel"], {"full_name": "Name"})
    assert mapping == {"full_name": "Name", "email": "Email", "phone": "Tel"}
