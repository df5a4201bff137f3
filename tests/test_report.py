"""The run report (issue 7): one self-contained, escaped HTML file and a markdown summary,
built from a small warehouse written by hand (no pipeline run, so the test stays fast)."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ccv.reporting import (
    SECTION_TITLES,
    ReportError,
    build_report,
    charts,
    markdown_summary,
    write_report,
    write_report_and_summary,
)
from ccv.reporting.sections import collect

INJECTED = '<script>alert("quarantine")</script>'
OPTIONAL_TABLES = ("segment_moves", "customer_value", "match_evidence", "nps_summary")
T0 = dt.datetime(2026, 11, 1, 2, 0)

BASE = """
create table runs (run_id varchar, as_of_date date, started_at timestamp,
                   finished_at timestamp, status varchar, full_refresh boolean);
insert into runs values
  ('20261031T020000-aaaaaa', '2026-10-30', '2026-10-31 02:00', '2026-10-31 02:01', 'published',
   false),
  ('20261101T020000-bbbbbb', '2026-10-31', '2026-11-01 02:00', '2026-11-01 02:03', 'published',
   false);

create table ingest_log (run_id varchar, source varchar, kind varchar, source_file varchar,
  content_hash varchar, status varchar, rows_read bigint, rows_loaded bigint,
  rows_quarantined bigint, message varchar, started_at timestamp, finished_at timestamp);
insert into ingest_log values
  ('20261031T020000-aaaaaa', 'crm', 'customers', '/in/crm.csv', 'h1', 'loaded', 7, 6, 1, null,
   '2026-10-31 02:00', '2026-10-31 02:00:01'),
  ('20261101T020000-bbbbbb', 'crm', 'customers', '/in/crm.csv', 'h1', 'unchanged', 0, 0, 0,
   'same content already loaded', '2026-11-01 02:00', '2026-11-01 02:00:01'),
  ('20261101T020000-bbbbbb', 'web', 'orders', '/in/web.jsonl', 'h2', 'loaded', 8, 6, 2, null,
   '2026-11-01 02:00', '2026-11-01 02:00:02');
-- what sql/staging/stg_ingest_files.sql builds from it: each file's version in use
create table stg_ingest_files as
  select run_id, source, kind, source_file, content_hash, status, message, rows_read,
         rows_loaded, rows_quarantined, finished_at
  from ingest_log where status = 'loaded';

create table quarantine (run_id varchar, source varchar, source_file varchar,
  row_number bigint, line_number bigint, field varchar, rule varchar, raw_value varchar,
  message varchar, raw_record json, quarantined_at timestamp);
insert into quarantine values
  ('20261031T020000-aaaaaa', 'crm', '/in/crm.csv', 3, null, 'email', 'email_syntax', $inj$,
   'email: email_syntax', '{}', '2026-10-31 02:00'),
  ('20261101T020000-bbbbbb', 'web', '/in/web.jsonl', 2, null, 'net_amount', 'parse_decimal',
   '12,5O', 'net_amount: parse_decimal', '{}', '2026-11-01 02:00'),
  ('20261101T020000-bbbbbb', 'web', '/in/web.jsonl', 5, null, 'order_id', 'duplicate_id',
   'W1', 'order_id: duplicate_id', '{}', '2026-11-01 02:00');

create table withheld_values (run_id varchar, source varchar, source_file varchar,
  row_number bigint, field varchar, rule varchar, raw_value varchar, message varchar,
  withheld_at timestamp, record_key varchar);
insert into withheld_values values
  ('20261101T020000-bbbbbb', 'crm', '/in/crm.csv', 4, 'birth_date', 'parse_date', '31/02/1990',
   'birth_date: parse_date (value 31/02/1990); the record loaded without it',
   '2026-11-01 02:00', 'd');

create table raw_customers (source varchar, source_record_id varchar);
insert into raw_customers values ('crm', 'a'), ('crm', 'b'), ('crm', 'c');
create table stg_customers as select * from raw_customers;

create table customer_xref (source varchar, source_record_id varchar, record_kind varchar,
  customer_id varchar, match_rule varchar, run_id varchar);
insert into customer_xref values
  ('crm', 'a', 'customer', 'C1', 'self', '20261031T020000-aaaaaa'),
  ('web', 'W1', 'order', 'C1', 'email', '20261101T020000-bbbbbb'),
  ('web', 'W2', 'order', 'C1', 'email', '20261101T020000-bbbbbb'),
  ('crm', 'b', 'customer', 'C2', 'self', '20261031T020000-aaaaaa'),
  ('web', 'W3', 'order', 'C2', 'phone', '20261101T020000-bbbbbb'),
  ('crm', 'c', 'customer', 'C3', 'self', '20261031T020000-aaaaaa');

create table identity_events (run_id varchar, event_type varchar, customer_id varchar,
  other_customer_id varchar, source varchar, source_record_id varchar, reason varchar,
  occurred_at timestamp);
insert into identity_events values
  ('20261031T020000-aaaaaa', 'new', 'C1', null, 'crm', 'a', 'new cluster', '2026-10-31 02:00'),
  ('20261101T020000-bbbbbb', 'merge', 'C1', 'C9', 'web', 'W2', 'shared email',
   '2026-11-01 02:00'),
  ('20261101T020000-bbbbbb', 'record_moved', 'C2', 'C1', 'web', 'W3', 'shared phone',
   '2026-11-01 02:00');

create table customers (customer_id varchar, full_name varchar);
insert into customers values ('C1', 'Ann <b>Bold</b>'), ('C2', 'Bob'), ('C3', 'Cy');

create table orders (order_id varchar, customer_id varchar, net_amount decimal(12, 2));
insert into orders values ('W1', 'C1', 10), ('W2', 'C1', 20), ('W3', 'C2', 5);

create table survey_responses (response_id varchar, customer_id varchar,
  submitted_at timestamp, nps integer, csat integer);
insert into survey_responses values
  ('S1', 'C1', '2026-10-01', 10, 5), ('S2', 'C2', '2026-10-02', 3, 2),
  ('S3', 'C3', '2026-10-03', 8, 4), ('S4', null, '2026-10-04', 9, null),
  ('S5', null, '2026-10-05', null, 3);

create table rfm_scores (customer_id varchar, recency_days integer, frequency integer,
  monetary decimal(12, 2), r_score integer, f_score integer, m_score integer,
  rfm_segment varchar);
insert into rfm_scores values
  ('C1', 3, 2, 30, 5, 5, 5, 'Champions'),
  ('C2', 40, 1, 5, 3, 1, 1, 'About to Sleep');

create table loyalty_segments (customer_id varchar, rfm_segment varchar, loyalty_cell varchar,
  loyalty_stage varchar);
insert into loyalty_segments values
  ('C1', 'Champions', 'true_loyalty', 'advocate'),
  ('C2', 'About to Sleep', 'no_loyalty', 'first_time_buyer'),
  ('C3', null, 'no_loyalty', 'prospect');
create table customer_360 as
  select c.customer_id, c.full_name, l.rfm_segment, l.loyalty_cell, l.loyalty_stage
  from customers c join loyalty_segments l using (customer_id);
"""

OPTIONAL = """
create table segment_moves (as_of_date date, previous_snapshot_on date, customer_id varchar,
  dimension varchar, from_value varchar, to_value varchar, move_type varchar);
insert into segment_moves values
  ('2026-10-31', '2026-10-30', 'C1', 'rfm_segment', 'Loyal Customers', 'Champions', 'moved'),
  ('2026-10-31', '2026-10-30', 'C3', 'loyalty_stage', null, 'prospect', 'new_customer');

create table customer_value (customer_id varchar, clv double, model_fitted boolean);
insert into customer_value values ('C1', 120.5, true), ('C2', 14.25, true), ('C3', null, true);

create table match_evidence (left_id varchar, right_id varchar, match_weight double);
insert into match_evidence values ('a', 'W1', 12.5), ('b', 'W3', 3.1), ('a', 'c', -4.0);

create table nps_summary (as_of_date date, responses integer, promoters integer,
  passives integer, detractors integer, nps double);
insert into nps_summary values ('2026-10-31', 4, 2, 1, 1, 25.0);
"""


def make_warehouse(path: Path, optional: bool) -> Path:
    sql = BASE.replace("$inj$", "'" + INJECTED.replace("'", "''") + "'")
    with duckdb.connect(str(path)) as con:
        con.execute(sql + (OPTIONAL if optional else ""))
    return path


@pytest.fixture(scope="module", params=[False, True], ids=["core_tables", "with_optional_tables"])
def warehouse(request, tmp_path_factory) -> tuple[Path, bool, Path]:
    """(warehouse file, has optional tables, its report written by write_report) — built once
    per module: drawing the charts is the slow part."""
    folder = tmp_path_factory.mktemp("report")
    db = make_warehouse(folder / "ccv.duckdb", request.param)
    return db, request.param, write_report(db, folder / "out" / "report.html")


class TagChecker(HTMLParser):
    """Collects tags; fails on a closing tag that does not match the open one."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in_title = tag == "title"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse(text: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    return checker


def test_report_is_one_self_contained_html_file(warehouse):
    db, _, out = warehouse

    assert out == db.parent / "out" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
    text = out.read_text(encoding="utf-8")
    assert len(text.encode()) < 1_000_000
    for external in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import"):
        assert external not in text.lower()
    assert "<link" not in text and "<script" not in text

    checker = parse(text)
    assert checker.errors == []
    assert checker.stack == []
    assert checker.title.startswith("ccv run report") and "20261101T020000-bbbbbb" in checker.title
    headings = re.findall(r"<h2>.*?</h2>", text, flags=re.S)
    for title in SECTION_TITLES:
        assert any(title in h for h in headings), title
    images = [attrs["src"] for tag, attrs in checker.tags if tag == "img"]
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert text.count('<img src="data:image/png;base64,') >= 5


def test_values_from_the_warehouse_are_escaped(warehouse):
    text = warehouse[2].read_text(encoding="utf-8")
    assert INJECTED not in text
    assert "&lt;script&gt;alert(&#34;quarantine&#34;)&lt;/script&gt;" in text
    assert "<script" not in text


def test_missing_optional_tables_are_skipped_with_a_sentence(warehouse):
    _, optional, out = warehouse
    text = out.read_text(encoding="utf-8")
    for table in OPTIONAL_TABLES:
        sentence = f"Not shown: the warehouse has no {table} table."
        assert (sentence in text) is not optional, table
    images = text.count('<img src="data:image/png;base64,')
    assert images == (9 if optional else 7)
    if optional:
        assert "Loyal Customers" in text and "25.0" in text  # a move; nps_summary's NPS


def test_report_defaults_to_the_latest_published_run(warehouse):
    latest = warehouse[2].read_text(encoding="utf-8")
    assert "web.jsonl" in latest  # a file of that run
    assert "record_moved" in latest and ">merge<" in latest  # its identity events
    assert "No identity events in this run" not in latest


def test_report_of_an_earlier_run(tmp_path):
    db = make_warehouse(tmp_path / "ccv.duckdb", optional=False)
    with duckdb.connect(str(db), read_only=True) as con:
        first = build_report(con, "20261031T020000-aaaaaa")
        with pytest.raises(ReportError, match="not in this warehouse"):
            build_report(con, "no-such-run")
    assert "20261031T020000-aaaaaa" in first and "2026-10-30" in first
    assert "crm.csv" in first and "web.jsonl" not in first.split('id="stages"')[0]
    assert "record_moved" not in first and ">new<" in first


def test_empty_warehouse_gives_a_report_of_sentences(tmp_path):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    text = write_report(db, tmp_path / "report.html").read_text()
    assert parse(text).errors == []
    for title in SECTION_TITLES:
        assert title in text
    assert text.count("Not shown:") >= len(SECTION_TITLES)
    with duckdb.connect(str(db), read_only=True) as con:
        assert "no run recorded" in markdown_summary(con)


def summary_after(tmp_path: Path, change: str) -> str:
    """The markdown summary of the test warehouse once `change` (SQL) has been run on it."""
    db = make_warehouse(tmp_path / "w.duckdb", optional=False)
    with duckdb.connect(str(db)) as con:
        con.execute(change)
    with duckdb.connect(str(db), read_only=True) as con:
        return markdown_summary(con)


def test_withheld_values_show_when_nothing_is_quarantined(tmp_path):
    """Every row loaded, some without a bad value: the Quarantine section lists the withheld
    values instead of saying there is nothing to see."""
    md = summary_after(tmp_path, "delete from quarantine")
    assert "| crm | birth_date | parse_date | 1 | 1 | 1 |" in md
    assert "every row read passed its contract" not in md


def test_a_warehouse_from_before_withheld_values_reports_none(tmp_path):
    md = summary_after(tmp_path, "drop table withheld_values")
    assert "| crm | customers | 1 | 7 | 6 | 1 | 0 |" in md


def test_markdown_summary(warehouse):
    db, optional, _ = warehouse
    with duckdb.connect(str(db), read_only=True) as con:
        md = markdown_summary(con)
    assert md.startswith("### ccv run 20261101T020000-bbbbbb · as of 2026-10-31 · published")
    for rule in ("email_syntax", "parse_decimal", "duplicate_id"):
        assert rule in md
    for segment in ("Champions", "About to Sleep", "true_loyalty", "no_loyalty"):
        assert segment in md
    assert "| web | orders | 1 | 8 | 6 | 2 | 0 |" in md  # rows per source
    assert "| crm | customers | 1 | 7 | 6 | 1 | 1 |" in md  # one value withheld
    assert "| merge | 1 | 1 |" in md  # identity events of the run
    assert "| crm | birth_date | parse_date | 1 | 1 | 1 |" in md  # values withheld
    assert "<script" not in md and "base64" not in md
    assert ("Loyal Customers" in md) is optional  # segment moves
    assert len(md) < 4000


def test_the_nightly_report_and_summary_come_from_one_pass(warehouse, tmp_path):
    """write_report_and_summary (what a night runs) writes the report write_report writes and
    returns the summary markdown_summary gives."""
    db, _, written = warehouse
    out, md = write_report_and_summary(db, tmp_path / "night.html")
    with duckdb.connect(str(db), read_only=True) as con:
        assert md == markdown_summary(con)

    def without_time(text: str) -> str:
        return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "", text)

    assert without_time(out.read_text()) == without_time(written.read_text())


def test_write_report_replaces_the_file_atomically(tmp_path):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    out = tmp_path / "report.html"
    out.write_text("old")
    write_report(db, out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.duckdb", "report.html"]
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing.duckdb", out)


def test_identity_facts_count_the_crosswalk(tmp_path):
    """Records, customers and cluster sizes as the crosswalk holds them (six records of three
    customers: sizes 3, 2, 1), and the match weights of the evidence."""
    db = make_warehouse(tmp_path / "ccv.duckdb", optional=True)
    with duckdb.connect(str(db), read_only=True) as con:
        _, sections = collect(con, None, draw=False)
    facts = dict(next(s for s in sections if s.key == "identity").facts())

    assert facts["Source records"] == "6"
    assert facts["Customers (clusters)"] == "3"
    assert facts["Single-record customers"] == "1"
    assert facts["Largest cluster"] == "3"
    assert facts["Scored pairs"] == "3"
    assert facts["Match weight min / median / max"] == "-4.00 / 3.10 / 12.50"


def test_identity_facts_of_a_nightly_warehouse_match_its_crosswalk(published_sample):
    """A night's warehouse: the cluster sizes come from `customers.record_count`, and must be
    the crosswalk's own (records per customer)."""
    db = published_sample.parent / "warehouse" / "ccv.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        _, sections = collect(con, None, draw=False)
        ((records, customers, single, largest),) = con.execute(
            """
            select sum(n), count(*), count(*) filter (where n = 1), max(n)
            from (select count(*) as n from customer_xref group by customer_id)
            """
        ).fetchall()
    facts = dict(next(s for s in sections if s.key == "identity").facts())
    assert facts["Source records"] == f"{records:,}"
    assert facts["Customers (clusters)"] == f"{customers:,}"
    assert facts["Single-record customers"] == f"{single:,}"
    assert facts["Largest cluster"] == f"{largest:,}"


def drawn_charts(monkeypatch, look) -> list:
    """Per chart drawn from now on, `look(fig)` once the chart is drawn as its image will be."""
    seen = []
    save = charts._data_uri

    def check(fig):
        fig.canvas.draw()
        seen.append(look(fig))
        return save(fig)

    monkeypatch.setattr(charts, "_data_uri", check)
    return seen


def drawn_extent(fig) -> tuple[tuple[float, ...], tuple[float, float]]:
    """The extent of everything `fig` draws (x0, y0, x1, y1) and its image's size, in inches."""
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    return (box.x0, box.y0, box.x1, box.y1), tuple(fig.get_size_inches())


def test_every_label_of_every_chart_lies_inside_its_image(monkeypatch):
    """Charts are laid out without a layout engine (`charts._fit`): long labels, big numbers
    and the totals written after the bars must still fit the image."""
    seen = drawn_charts(monkeypatch, drawn_extent)
    long = ["a source with a rather long name indeed", "web", "(no order in window)"]
    charts.hbar(long, {"loaded": [3_717_151, 12, 0]}, "Rows per source", "rows")
    charts.hbar(
        long,
        {"loaded": [6_240_038, 5, 900], "quarantined": [16_665, 1, 0]},
        "Rows per source: loaded and quarantined",
        "rows",
        notes=["6,240,038 + 16,665 quarantined", "5 + 1 quarantined", "900 + 0 quarantined"],
    )
    charts.hbar(long, {"rows": [11_176_503, 1, 0]}, "Rows per table", "rows", log_x=True)
    charts.grouped_hbars(
        [("Per RFM segment", long, [530_552, 6_040, 1]), ("Per cell", ["a", "b"], [612_665, 9])]
    )
    charts.bars(
        list(range(1, 300)), [10**6] + [3] * 298, "Sizes", "records", "customers", log_y=True
    )
    charts.bars(["0", "1", "10"], [72_000, 9_000, 64_000], "NPS", "answer", "responses")
    charts.histogram(list(range(2_000)) * 100, "CLV", "clv", "customers")
    charts.heatmap(
        np.array([[69_445, 2_529], [7_271, 47_934]]),
        [["69,445\n85", "2,529\n1.9k"], ["7,271\n105", "47,934\n2.6k"]],
        [1, 5],
        [1, 5],
        "Customers per R x F score",
        "F score",
        "R score (5 = most recent)",
    )
    assert len(seen) == 8
    for chart, ((x0, y0, x1, y1), (width, height)) in enumerate(seen):
        assert x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height, (chart, x0, y0, x1, y1)
        # and the chart uses its image: no more than a margin's worth left empty
        assert max(x0, y0, width - x1, height - y1) < 0.3, (chart, x0, y0, x1, y1)


def test_count_axes_of_small_and_large_charts_read_as_whole_compact_numbers(monkeypatch):
    """A histogram of three customers counts 0, 1, 2 (not 0.5 steps printed twice as "0"), one
    of a million reads 5k, 10k; bars of millions read 1.0M, 2.0M (not 1e6 above the axis)."""
    seen = drawn_charts(
        monkeypatch,
        lambda fig: (
            [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()],
            fig.axes[0].yaxis.get_offset_text().get_text(),
        ),
    )
    charts.histogram([1.0, 2.0, 2.5], "CLV", "clv")
    charts.histogram(list(range(1_000)) * 1_000, "CLV", "clv")
    charts.bars(["0", "10"], [3_000_000, 1_000_000], "NPS", "answer", "responses")
    labels, offsets = zip(*seen, strict=True)
    small, large, millions = labels
    assert len(small) == len(set(small)) and "0.5" not in small and "1" in small, small
    assert any(label.endswith("k") for label in large), large
    assert any(label.endswith("M") for label in millions), millions
    assert offsets == ("", "", "")  # no "1e6" written above an axis
