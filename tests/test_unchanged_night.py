"""A night whose identity inputs did not change keeps the last resolution, and only then."""

from __future__ import annotations

import importlib.metadata

import duckdb

from ccv.config import load_config
from ccv.identity import unchanged
from ccv.pipeline import run_nightly
from ccv.reporting import markdown_summary
from ccv.warehouse import models
from tests.conftest import copy_of_published, make_project, night_without_report
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
    first = night_without_report(load_config(config_path))
    before = identity_tables(config_path)
    outcome_before = outcome(config_path)

    again = night_without_report(load_config(config_path))
    work = again.resolve.work
    assert work.params == "unchanged"
    # the run report says what each night's identity resolution computed
    records = first.resolve.work.records
    db = load_config(config_path).resolve("warehouse/ccv.duckdb")
    with duckdb.connect(str(db), read_only=True) as con:
        summaries = {run.run_id: markdown_summary(con, run.run_id) for run in (first, again)}
    assert (
        f"Records standardised by this run: {records:,} of {records:,}" in summaries[first.run_id]
    )
    assert f"Match parameters: {first.resolve.work.params}" in summaries[first.run_id]
    assert f"Records standardised by this run: 0 of {records:,}" in summaries[again.run_id]
    assert f"Records re-clustered by this run: 0 of {records:,}" in summaries[again.run_id]
    assert f"Records read by this run: {records:,} of {records:,}" in summaries[first.run_id]
    assert f"Records read by this run: 0 of {records:,}" in summaries[again.run_id]
    assert "Match parameters: unchanged" in summaries[again.run_id]
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


def test_changed_settings_or_input_resolve_again(tmp_path, published_sample):
    config_path = copy_of_published(published_sample, tmp_path / "p")
    # a stricter match threshold: the same input resolves again, to what a rebuild gives
    text = config_path.read_text()
    stricter = text.replace("[identity]", "[identity]\nmatch_probability = 0.99", 1)
    assert stricter != text
    config_path.write_text(stricter)
    work = night_without_report(load_config(config_path)).resolve.work
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
    changed = night_without_report(load_config(config_path)).resolve.work
    assert changed.params != "unchanged" and changed.standardised >= 1


def test_a_library_upgrade_resolves_the_same_inputs_afresh(tmp_path, monkeypatch, published_sample):
    """After an upgrade of a library whose results identity keeps (here phonenumbers, whose
    metadata changes with its releases) the same inputs are not skipped as unchanged, and no
    stored standardised value, block key or comparison level is reused."""
    config_path = copy_of_published(published_sample, tmp_path / "p")
    installed = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "99.0" if name == "phonenumbers" else installed(name),
    )
    work = night_without_report(load_config(config_path)).resolve.work
    assert work.params != "unchanged"
    assert work.standardised == work.records
    assert work.pairs_compared == work.candidate_pairs


def _edit_line(path, line_no: int, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[line_no]
    lines[line_no] = lines[line_no].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


def test_a_changed_order_or_survey_answer_alone_resolves_again(tmp_path, published_sample):
    """Staged orders are known unchanged from staging's by-key log, survey answers by their
    rows: a change to either alone (a till receipt's amount, an answer's comment: neither an
    identifier) still makes the night resolve, and a night after it with no change does not."""
    config_path = copy_of_published(published_sample, tmp_path / "p")
    sample = config_path.parent / "data" / "sample"
    _edit_line(sample / "store_orders.csv", 1, ",53.00,0.00,53.00,", ",54.00,0.00,54.00,")
    assert night_without_report(load_config(config_path)).resolve.work.params != "unchanged"
    assert night_without_report(load_config(config_path)).resolve.work.params == "unchanged"
    _edit_line(sample / "survey_responses.csv", 1, "kept logging me out", "logs me out")
    assert night_without_report(load_config(config_path)).resolve.work.params != "unchanged"
    assert night_without_report(load_config(config_path)).resolve.work.params == "unchanged"


def test_the_staged_tables_known_unchanged_by_their_log_log_every_row():
    """`unchanged.STAGED_LOGGED` relies on their updates logging every row they delete or
    insert, which a model does only with a change column."""
    staged = {m.name: m for m in models.load_layer("staging")}
    for table in unchanged.STAGED_LOGGED:
        assert staged[table].incremental and staged[table].incremental.changes, table
