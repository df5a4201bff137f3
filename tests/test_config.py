"""Config parsing: a usable config loads; a bad one names the key and what is wrong."""

from pathlib import Path

import pytest

from ccv.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def minimal(**overrides) -> dict:
    source = {
        "name": "crm",
        "kind": "customers",
        "path": "crm.csv",
        "format": "csv",
        "columns": {"source_record_id": "id", "email": "mail"},
    }
    source.update(overrides)
    return {"sources": [source]}


def errors_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_sample_config_loads_with_every_source_kind():
    config = load_config(ROOT / "ccv.toml")
    # the sample must exercise every kind the pipeline knows
    assert {s.kind for s in config.sources} == {"customers", "orders", "surveys"}
    # relative paths resolve against the config file's folder, not the working directory
    assert config.resolve(config.warehouse.path) == ROOT / "warehouse" / "ccv.duckdb"


def test_defaults_fill_what_the_file_leaves_out():
    config = parse_config(minimal())
    assert config.schedule.cron == "0 2 * * *"
    assert config.run.as_of == "latest_order"
    assert config.analytics.rfm_window_months == 24


def test_unknown_canonical_field_is_named_with_its_source():
    message = errors_of(minimal(columns={"source_record_id": "id", "emial": "mail"}))
    assert "sources[0]" in message and "columns.emial" in message
    assert "unknown canonical field" in message


def test_missing_key_field_is_required():
    message = errors_of(minimal(columns={"email": "mail"}))
    assert "columns.source_record_id" in message and "required" in message


def test_a_dropped_column_that_is_also_mapped_is_named():
    message = errors_of(minimal(drop_columns=["exported_at", "mail"]))
    assert "sources[0]" in message and "drop_columns: 'mail' is loaded (columns.email)" in message
    assert parse_config(minimal(drop_columns=["exported_at"])).sources[0].drop_columns == [
        "exported_at"
    ]


def test_unknown_top_level_key_is_rejected():
    data = minimal() | {"warehous": {"path": "x"}}
    assert "warehous: unknown key; did you mean 'warehouse'?" in errors_of(data)


def test_a_misspelt_key_is_named_with_the_key_it_likely_means():
    """Anywhere in the file: a section, a source in the list, a source's reader options."""
    message = errors_of(minimal() | {"warehouse": {"memroy_limit": "4GB"}})
    assert "warehouse.memroy_limit: unknown key; did you mean 'memory_limit'?" in message
    message = errors_of(minimal(laod="snapshot", csv={"delimeter": ";"}))
    assert "sources[0].laod: unknown key; did you mean 'load'?" in message
    assert "sources[0].csv.delimeter: unknown key; did you mean 'delimiter'?" in message
    # nothing close: the section's keys are listed
    message = errors_of(minimal() | {"warehouse": {"zzz": 1}})
    assert "warehouse.zzz: unknown key (known: path, marts_dir, " in message


def test_bad_as_of_rule_and_cron_are_explained():
    data = minimal() | {"run": {"as_of": "yesterday"}, "schedule": {"cron": "every night"}}
    message = errors_of(data)
    assert "run.as_of" in message and "yesterday" in message
    assert "schedule.cron" in message and "5-field" in message


def test_memory_limit_is_a_size_or_share_of_ram_and_reaches_duckdb(tmp_path):
    message = errors_of(minimal() | {"warehouse": {"memory_limit": "lots"}})
    assert "warehouse.memory_limit" in message and "'25%'" in message and "lots" in message
    config = parse_config(minimal() | {"warehouse": {"memory_limit": " 1GiB "}})
    assert config.warehouse.memory_limit == "1GiB"
    from ccv.pipeline import connect

    with connect(tmp_path / "w.duckdb", memory_limit=config.warehouse.memory_limit) as con:
        assert con.execute("select current_setting('memory_limit')").fetchone() == ("1.0 GiB",)


def test_customer_source_must_name_a_customers_source():
    orders = {
        "name": "shop",
        "kind": "orders",
        "path": "o.csv",
        "format": "csv",
        "columns": {"order_id": "id", "customer_record_id": "acct"},
        "customer_source": "nope",
    }
    data = minimal()
    data["sources"].append(orders)
    assert "sources[1].customer_source" in errors_of(data)


def test_duplicate_source_names_are_rejected():
    data = minimal()
    data["sources"].append(dict(data["sources"][0]))
    assert "duplicate source name 'crm'" in errors_of(data)


def test_invalid_toml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nas_of = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
