"""A night whose identity inputs did not change keeps the last resolution, and only then."""

from __future__ import annotations

import importlib.metadata

import duckdb

from ccv.config import load_config
from ccv.pipeline import run_nightly
from tests.conftest import make_project
from tests.test_incremental import (
    CUSTOMER_TABLES,
    ORDER_TABLES,
    customer_rows,
    order_rows,
    outcome,
    updated_tables,
)

IDENTITY_TABLES = (
    "identity_records",
    "customer_xref",
    "match_evidence",
    "customer_attributes",
    "customer_ids",
    "identity_events",
    "identity_std",
    "match_pairs",
)


def identity_tables(config_path) -> dict[str, list[tuple]]:
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t: sorted(map(str, con.execute(f"select * from {t}").fetchall()))
            for t in IDENTITY_TABLES
        }


def test_a_night_without_new_input_keeps_the_last_resolution(tmp_path):
    config_path = make_project(tmp_path / "p")
    first = run_nightly(load_config(config_path))
    before = identity_tables(config_path)
    outcome_before = outcome(config_path)

    again = run_nightly(load_config(config_path))
    work = again.resolve.work
    assert work.params == "unchanged"
    assert (work.standardised, work.removed, work.pairs_compared) == (0, 0, 0)
    assert work.records == first.resolve.work.records
    assert (again.resolve.customers, again.resolve.records, again.resolve.events) == (
        first.resolve.customers,
        first.resolve.records,
        {},
    )
    # the identity tables are exactly last night's (run ids included)
    assert identity_tables(config_path) == before
    assert outcome(config_path) == outcome_before
    # downstream models were updated by nothing rather than rebuilt
    assert updated_tables(config_path) >= ORDER_TABLES | CUSTOMER_TABLES


def test_changed_settings_or_input_resolve_again(tmp_path):
    config_path = make_project(tmp_path / "p")
    run_nightly(load_config(config_path))
    # a stricter match threshold: the same input resolves again, to what a rebuild gives
    text = config_path.read_text()
    stricter = text.replace("[identity]", "[identity]\nmatch_probability = 0.99", 1)
    assert stricter != text
    config_path.write_text(stricter)
    work = run_nightly(load_config(config_path)).resolve.work
    assert work.params != "unchanged"
    full = tmp_path / "full"
    full.mkdir()
    (full / "ccv.toml").write_text(stricter)
    (full / "data").symlink_to(config_path.parent / "data")
    run_nightly(load_config(full / "ccv.toml"), full_refresh=True)
    assert outcome(config_path) == outcome(full / "ccv.toml")
    assert customer_rows(config_path) == customer_rows(full / "ccv.toml")
    assert order_rows(config_path) == order_rows(full / "ccv.toml")

    # a changed CRM row (one customer's new e-mail): resolved again
    crm = config_path.parent / "data" / "sample" / "crm_eshop_accounts.csv"
    lines = crm.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[1].split(",")
    fields[3] = "someone.new@example.org"
    crm.write_text("".join([lines[0], ",".join(fields), *lines[2:]]), encoding="utf-8")
    changed = run_nightly(load_config(config_path)).resolve.work
    assert changed.params != "unchanged" and changed.standardised >= 1


def test_a_library_upgrade_resolves_the_same_inputs_afresh(tmp_path, monkeypatch):
    """After an upgrade of a library whose results identity keeps (here phonenumbers, whose
    metadata changes with its releases) the same inputs are not skipped as unchanged, and no
    stored standardised value, block key or comparison level is reused."""
    config_path = make_project(tmp_path / "p")
    run_nightly(load_config(config_path))
    installed = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "99.0" if name == "phonenumbers" else installed(name),
    )
    work = run_nightly(load_config(config_path)).resolve.work
    assert work.params != "unchanged"
    assert work.standardised == work.records
    assert work.pairs_compared == work.candidate_pairs
