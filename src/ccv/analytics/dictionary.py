"""The data dictionary of the marts: one source of truth for every published column.

Why in code: tests in `tests/test_marts.py` build the marts on small inline data and fail when
a column exists that is not documented here, a documented column no longer exists, or its type
changed; and when `docs/data_dictionary.md` differs from what `render()` writes. So the
dictionary cannot rot.

Regenerate the Markdown after editing: `.venv/bin/python -m ccv.analytics.dictionary`
(`--check` exits 1 if the committed file is stale).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

DOCS_PATH = Path(__file__).resolve().parents[3] / "docs" / "data_dictionary.md"


@dataclass(frozen=True)
class Column:
    """One column: DuckDB type (as `describe` prints it), what it means, how it is computed."""

    name: str
    type: str
    description: str
    computed: str


@dataclass(frozen=True)
class Table:
    """One published table: its grain (what one row is), who builds it, and its columns."""

    name: str
    grain: str
    built_by: str
    columns: tuple[Column, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def C(name: str, type_: str, description: str, computed: str) -> Column:
    """Shorthand that keeps the long tables below readable."""
    return Column(name, type_, description, computed)


def _from(table: Table, *names: str) -> tuple[Column, ...]:
    """Columns carried unchanged from another table: same meaning, computed = that column."""
    return tuple(replace(table.column(n), computed=f"`{table.name}.{n}`") for n in names)


# ---------------------------------------------------------------- rfm


RFM_SEGMENT_MAP = Table(
    "rfm_segment_map",
    "one row per (r_score, fm_score) cell of the 5 × 5 grid (25 rows)",
    "sql/marts/rfm_segment_map.sql",
    (
        C("r_score", "INTEGER", "Recency score 1–5 (5 = most recent).", "literal grid"),
        C("fm_score", "INTEGER", "Average of F and M scores rounded down, 1–5.", "literal grid"),
        C(
            "rfm_segment",
            "VARCHAR",
            "Named segment of the cell (Champions, Loyal Customers, … Lost).",
            "literal grid; see the table in the README",
        ),
    ),
)

RFM_SCORES = Table(
    "rfm_scores",
    "one row per customer with ≥ 1 completed order in the RFM window",
    "sql/marts/rfm_scores.sql",
    (
        C("customer_id", "VARCHAR", "Resolved customer id.", "`customers.customer_id`"),
        C(
            "first_order_on",
            "DATE",
            "First completed order in the window.",
            "min(ordered_on) of completed orders in (as_of − rfm_window_months, as_of]",
        ),
        C(
            "last_order_on",
            "DATE",
            "Last completed order in the window.",
            "max(ordered_on) of completed orders in the window",
        ),
        C(
            "recency_days",
            "INTEGER",
            "Days since the last completed order.",
            "as_of_date − last_order_on",
        ),
        C(
            "frequency",
            "INTEGER",
            "Completed orders in the window.",
            "count(distinct order_key) of completed orders in the window",
        ),
        C(
            "monetary",
            "DECIMAL(18,2)",
            "Net revenue in the window (may be negative after returns).",
            "sum(revenue_amount) of all the customer's orders in the window",
        ),
        C(
            "avg_order_value",
            "DECIMAL(18,2)",
            "Average revenue per completed order in the window.",
            "round(monetary / frequency, 2)",
        ),
        C(
            "r_score",
            "INTEGER",
            "Recency score 1–5, 5 = most recent.",
            "least(5, 1 + floor(5·(rank − 1)/(n − 1))), rank() worst to best, ties share the "
            "lowest rank",
        ),
        C("f_score", "INTEGER", "Frequency score 1–5, 5 = most orders.", "as r_score"),
        C("m_score", "INTEGER", "Monetary score 1–5, 5 = highest revenue.", "as r_score"),
        C("fm_score", "INTEGER", "Combined F/M score 1–5.", "floor((f_score + m_score) / 2)"),
        C("rfm_cell", "VARCHAR", "Scores as a code, e.g. '545'.", "r_score ‖ f_score ‖ m_score"),
        C(
            "rfm_segment",
            "VARCHAR",
            "Named RFM segment.",
            "`rfm_segment_map` at (r_score, fm_score)",
        ),
    ),
)


# ---------------------------------------------------------------- loyalty


LOYALTY_SEGMENTS = Table(
    "loyalty_segments",
    "one row per customer in `customers`",
    "sql/marts/loyalty_segments.sql",
    (
        C("customer_id", "VARCHAR", "Resolved customer id.", "`customers.customer_id`"),
        C(
            "rfm_segment",
            "VARCHAR",
            "RFM segment; NULL without a completed order in the window.",
            "`rfm_scores.rfm_segment`",
        ),
        C(
            "response_count",
            "INTEGER",
            "Survey responses submitted on or before the as-of day.",
            "count(distinct response_key)",
        ),
        C(
            "latest_nps",
            "INTEGER",
            "Latest non-null NPS answer (0–10).",
            "last by submitted_at (ties: highest response_key), up to the as-of day",
        ),
        C("latest_csat", "INTEGER", "Latest non-null CSAT answer (1–5).", "as latest_nps"),
        C(
            "nps_category",
            "VARCHAR",
            "'promoter' | 'passive' | 'detractor'; NULL without an NPS answer.",
            "latest_nps 9–10 / 7–8 / 0–6",
        ),
        C("has_survey", "BOOLEAN", "Answered any survey.", "response_count > 0"),
        C(
            "is_repeat_buyer",
            "BOOLEAN",
            "Bought at least twice in the RFM window.",
            "rfm frequency ≥ 2",
        ),
        C(
            "is_lapsed",
            "BOOLEAN",
            "Has bought, but not recently.",
            "recency_days > lapsed_after_days, or completed orders before the window but none in"
            " it",
        ),
        C(
            "behavioural_loyalty",
            "VARCHAR",
            "'high' | 'low'.",
            "'high' when is_repeat_buyer and not is_lapsed",
        ),
        C(
            "loyalty_cell",
            "VARCHAR",
            "Dick & Basu cell: true_loyalty, latent_loyalty, spurious_loyalty, no_loyalty.",
            "behaviour × (nps_category = 'promoter'); no NPS answer counts as not promoter",
        ),
        C(
            "is_cell_from_behaviour_only",
            "BOOLEAN",
            "The cell was set without an NPS answer (survey this customer).",
            "nps_category is null",
        ),
        C(
            "loyalty_stage",
            "VARCHAR",
            "prospect, lapsed, advocate, loyal, repeat_buyer or first_time_buyer.",
            "first matching rule, see README 'Loyalty'",
        ),
    ),
)


# ---------------------------------------------------------------- clv


CUSTOMER_VALUE = Table(
    "customer_value",
    "one row per customer in `customers`",
    "ccv.analytics.customer_value.build_customer_value (Python, before the marts)",
    (
        C("customer_id", "VARCHAR", "Resolved customer id.", "`customers.customer_id`"),
        C("as_of_date", "DATE", "End of the calibration period (the run's as-of date).", "run"),
        C(
            "clv_horizon_months",
            "INTEGER",
            "Months of future revenue in `clv`.",
            "`horizon_months` argument",
        ),
        C(
            "monthly_discount_rate",
            "DOUBLE",
            "Discount rate per month applied to `clv` (0 = undiscounted).",
            "`monthly_discount_rate` argument",
        ),
        C(
            "first_purchase_on",
            "DATE",
            "First completed order day; NULL without one.",
            "min(ordered_on), completed orders up to as_of (whole history)",
        ),
        C("last_purchase_on", "DATE", "Last completed order day.", "max(ordered_on)"),
        C(
            "purchase_days",
            "INTEGER",
            "Distinct days with a completed order (0 for prospects).",
            "count(distinct ordered_on)",
        ),
        C(
            "repeat_purchase_days",
            "INTEGER",
            "BG/NBD frequency x: purchase days after the first.",
            "purchase_days − 1; NULL without a purchase",
        ),
        C(
            "first_to_last_purchase_days",
            "INTEGER",
            "BG/NBD recency t_x in days.",
            "last_purchase_on − first_purchase_on",
        ),
        C(
            "first_purchase_to_as_of_days",
            "INTEGER",
            "BG/NBD customer age T in days.",
            "as_of_date − first_purchase_on",
        ),
        C(
            "avg_repeat_purchase_value",
            "DECIMAL(18,2)",
            "Gamma-Gamma input m_x: mean value of the repeat purchase days.",
            "mean over purchase days after the first of sum(revenue_amount) of that day's "
            "completed orders; NULL when x = 0",
        ),
        C(
            "probability_alive",
            "DOUBLE",
            "Probability the customer is still active (BG/NBD).",
            "1/(1 + [x>0]·a/(b+x−1)·((α+T)/(α+t_x))^(r+x)); 1 for one-time buyers",
        ),
        C(
            "expected_purchases_90d",
            "DOUBLE",
            "Expected purchase days in the next 90 days (BG/NBD).",
            "FHL 2005 eq. 10 with t = 90",
        ),
        C("expected_purchases_180d", "DOUBLE", "As above, next 180 days.", "eq. 10, t = 180"),
        C("expected_purchases_365d", "DOUBLE", "As above, next 365 days.", "eq. 10, t = 365"),
        C(
            "expected_avg_order_value",
            "DECIMAL(18,2)",
            "Expected value per future purchase day (Gamma-Gamma).",
            "(γ + x·m_x)·p/(p·x + q − 1); population mean p·γ/(q−1) for x = 0",
        ),
        C(
            "clv",
            "DECIMAL(18,2)",
            "Expected revenue over the horizon, discounted monthly.",
            "Σ_i (E[purchases by month i] − E[by month i−1]) · expected_avg_order_value / "
            "(1+d)^i, month = 30.4375 days",
        ),
        C(
            "model_fitted",
            "BOOLEAN",
            "BG/NBD predictions are present for this customer.",
            "the model fitted this run and the customer has a purchase",
        ),
        C(
            "spend_model_fitted",
            "BOOLEAN",
            "Gamma-Gamma predictions are present for this customer.",
            "the model fitted this run and the customer has a purchase",
        ),
    ),
)


# ---------------------------------------------------------------- customer 360


def _customer_360() -> Table:
    golden = "`customers.{}` (golden record)"
    person = (
        ("customer_id", "VARCHAR", "Resolved customer id."),
        ("loyalty_id", "VARCHAR", "Standardised loyalty card id."),
        ("first_name", "VARCHAR", "First name."),
        ("last_name", "VARCHAR", "Last name."),
        ("full_name", "VARCHAR", "First and last name."),
        ("birth_date", "DATE", "Date of birth."),
        ("gender", "VARCHAR", "Gender as given by a CRM source."),
        ("email", "VARCHAR", "Email address."),
        ("phone", "VARCHAR", "Phone number, E.164."),
        ("address_line", "VARCHAR", "Street address."),
        ("city", "VARCHAR", "City."),
        ("postcode", "VARCHAR", "Postcode."),
        ("country", "VARCHAR", "Country."),
        ("email_opt_in", "BOOLEAN", "Consents to email marketing."),
        ("sms_opt_in", "BOOLEAN", "Consents to SMS marketing."),
        ("first_seen_at", "TIMESTAMP", "First time any source saw this person."),
        ("source_count", "INTEGER", "Sources with a record of this person."),
        ("record_count", "INTEGER", "Source records merged into this customer."),
        ("sources", "VARCHAR[]", "Names of those sources."),
    )
    completed = "completed orders up to as_of"
    lifetime = (
        C(
            "first_order_on",
            "DATE",
            "First completed order (lifetime).",
            f"min(ordered_on), {completed}",
        ),
        C(
            "last_order_on",
            "DATE",
            "Last completed order (lifetime).",
            f"max(ordered_on), {completed}",
        ),
        C(
            "lifetime_orders",
            "INTEGER",
            "Completed orders (lifetime).",
            f"count(distinct order_key), {completed}; 0 if none",
        ),
        C(
            "lifetime_revenue",
            "DECIMAL(18,2)",
            "Net revenue (lifetime).",
            "sum(revenue_amount) of all orders up to as_of; 0.00 if none",
        ),
        C("web_orders", "INTEGER", "Completed web orders.", "as lifetime_orders, channel = 'web'"),
        C(
            "store_orders",
            "INTEGER",
            "Completed store orders.",
            "as lifetime_orders, channel = 'store'",
        ),
        C(
            "web_revenue",
            "DECIMAL(18,2)",
            "Net web revenue.",
            "as lifetime_revenue, channel = 'web'",
        ),
        C(
            "store_revenue",
            "DECIMAL(18,2)",
            "Net store revenue.",
            "as lifetime_revenue, channel = 'store'",
        ),
        C(
            "channel_mix",
            "VARCHAR",
            "'online_only' | 'store_only' | 'omnichannel'; NULL without orders.",
            "from web_orders and store_orders",
        ),
    )
    pattern = (
        C(
            "mean_interpurchase_days",
            "DOUBLE",
            "Mean days between consecutive purchase days; NULL below 2 purchase days.",
            f"avg of day gaps between distinct ordered_on, {completed}, 1 decimal",
        ),
        C(
            "interpurchase_cv",
            "DOUBLE",
            "Coefficient of variation of those gaps; NULL below 3 purchase days.",
            "stddev_pop / mean of the gaps, 3 decimals",
        ),
        C(
            "buyer_regularity",
            "VARCHAR",
            "'regular' | 'occasional'; NULL without a completed order.",
            "regular when ≥ 3 purchase days, mean gap ≤ regular_max_mean_days (90) and cv ≤ "
            "regular_max_cv (0.5)",
        ),
        C(
            "favourite_store",
            "VARCHAR",
            "Store with the most completed orders; NULL without store orders.",
            "ties: latest order, then lowest store_id",
        ),
        C(
            "favourite_category",
            "VARCHAR",
            "Product category in the most completed orders; NULL without categorised lines.",
            "from `order_lines` of completed orders (lines with another status ignored); ties: "
            "higher line_amount, then name",
        ),
    )
    clv = (
        *_from(
            CUSTOMER_VALUE,
            "probability_alive",
            "expected_purchases_90d",
            "expected_purchases_180d",
            "expected_purchases_365d",
            "expected_avg_order_value",
            "clv",
            "clv_horizon_months",
        ),
        C(
            "clv_model_fitted",
            "BOOLEAN",
            "`clv` comes from fitted models (false for prospects and unfit runs).",
            "coalesce(customer_value.model_fitted and spend_model_fitted, false)",
        ),
    )
    return Table(
        "customer_360",
        "one row per customer in `customers`",
        "sql/marts/customer_360.sql",
        (
            *(C(n, t, d, golden.format(n)) for n, t, d in person),
            *lifetime,
            *_from(
                RFM_SCORES,
                "recency_days",
                "frequency",
                "monetary",
                "avg_order_value",
                "r_score",
                "f_score",
                "m_score",
                "rfm_cell",
                "rfm_segment",
            ),
            *_from(
                LOYALTY_SEGMENTS,
                "response_count",
                "latest_nps",
                "latest_csat",
                "nps_category",
                "has_survey",
                "is_repeat_buyer",
                "is_lapsed",
                "behavioural_loyalty",
                "loyalty_cell",
                "is_cell_from_behaviour_only",
                "loyalty_stage",
            ),
            *pattern,
            *clv,
        ),
    )


CUSTOMER_360 = _customer_360()

_PSEUDO_DROPPED = (
    "customer_id",
    "loyalty_id",
    "first_name",
    "last_name",
    "full_name",
    "birth_date",
    "email",
    "phone",
    "address_line",
    "city",
    "postcode",
)
CUSTOMER_360_PSEUDO = Table(
    "customer_360_pseudo",
    "one row per row of `customer_360`, without direct identifiers",
    "sql/marts/customer_360_pseudo.sql",
    (
        C(
            "pseudo_id",
            "VARCHAR",
            "Keyed pseudonym of the customer: stable from run to run, not "
            "computable without the key (see src/ccv/privacy/pseudonym.py).",
            "sha256(pseudonym_key || ':' || customer_id)",
        ),
        C(
            "postcode_outward",
            "VARCHAR",
            "Outward code of a UK postcode (`SW1A` of `SW1A 1AA`); NULL for other shapes.",
            "leading area + district of postcode when it is a full UK postcode",
        ),
        C("birth_year", "BIGINT", "Year of birth.", "year(birth_date)"),
        *_from(
            CUSTOMER_360, *(c.name for c in CUSTOMER_360.columns if c.name not in _PSEUDO_DROPPED)
        ),
    ),
)


# ---------------------------------------------------------------- run-level marts


SEGMENT_MOVES = Table(
    "segment_moves",
    "one row per customer and dimension whose value changed since the previous snapshot",
    "sql/marts/segment_moves.sql",
    (
        C("as_of_date", "DATE", "This run.", "getvariable('as_of_date')"),
        C(
            "previous_snapshot_on",
            "DATE",
            "Snapshot compared against.",
            "max(segment_history.snapshot_on) < as_of_date",
        ),
        C("customer_id", "VARCHAR", "Resolved customer id.", "current or previous snapshot"),
        C(
            "dimension",
            "VARCHAR",
            "'rfm_segment' | 'loyalty_cell' | 'loyalty_stage'.",
            "one row per changed dimension",
        ),
        C(
            "from_value",
            "VARCHAR",
            "Value in the previous snapshot (NULL: new customer, or no RFM segment then).",
            "`segment_history`",
        ),
        C(
            "to_value",
            "VARCHAR",
            "Value now (NULL: left `customers`, or no RFM segment now).",
            "`loyalty_segments`",
        ),
        C(
            "move_type",
            "VARCHAR",
            "'new_customer' | 'left_customers' | 'moved'.",
            "which side of the comparison has the customer",
        ),
    ),
)

NPS_SUMMARY = Table(
    "nps_summary",
    "one row per run",
    "sql/marts/nps_summary.sql",
    (
        C("as_of_date", "DATE", "This run.", "getvariable('as_of_date')"),
        C("responses_from", "DATE", "First day counted.", "as_of_date − 12 months + 1 day"),
        C("responses_to", "DATE", "Last day counted.", "as_of_date"),
        C(
            "responses",
            "INTEGER",
            "Responses with an NPS answer in the window, anonymous ones included.",
            "count(*)",
        ),
        C("respondents", "INTEGER", "Distinct known customers among them.", "count(distinct)"),
        C("promoters", "INTEGER", "Answers 9–10.", "count(*) filter nps ≥ 9"),
        C("passives", "INTEGER", "Answers 7–8.", "count(*) filter nps 7–8"),
        C("detractors", "INTEGER", "Answers 0–6.", "count(*) filter nps ≤ 6"),
        C("pct_promoters", "DOUBLE", "Promoters, % of responses.", "100·promoters/responses"),
        C("pct_detractors", "DOUBLE", "Detractors, % of responses.", "100·detractors/responses"),
        C(
            "nps",
            "DOUBLE",
            "Net Promoter Score, −100..100; NULL without responses.",
            "round(100·(promoters − detractors)/responses, 1)",
        ),
    ),
)

TABLES: tuple[Table, ...] = (
    CUSTOMER_360,
    CUSTOMER_360_PSEUDO,
    RFM_SCORES,
    RFM_SEGMENT_MAP,
    LOYALTY_SEGMENTS,
    CUSTOMER_VALUE,
    SEGMENT_MOVES,
    NPS_SUMMARY,
)


# ---------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole `docs/data_dictionary.md`, deterministic."""
    lines = [
        "# Data dictionary",
        "",
        "Generated by `python -m ccv.analytics.dictionary` from `src/ccv/analytics/dictionary.py`;"
        " do not edit by hand. `tests/test_marts.py` fails when a mart column is"
        " missing here, documented but gone, or of another type.",
        "",
        "All values are as of the run's as-of date. Tables:",
        "",
    ]
    lines += [f"- [`{t.name}`](#{t.name}) — {t.grain}" for t in TABLES]
    for table in TABLES:
        lines += [
            "",
            f"## {table.name}",
            "",
            f"Grain: {table.grain}. Built by `{table.built_by}`.",
            "",
            "| column | type | description | how computed |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c.name}` | {c.type} | {_cell(c.description)} | {_cell(c.computed)} |"
            for c in table.columns
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m ccv.analytics.dictionary", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
