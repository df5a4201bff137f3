"""The pandera contracts: what a valid canonical row of each kind is.

Types are already enforced by the mapping (a value that does not parse is a parse violation), so
the contracts hold the *rules*: required keys, unique ids per file (the first occurrence wins, later
duplicates are quarantined), value ranges, allowed values, email syntax, and dates that are neither
before 1900 nor in the future beyond a tolerance. `violations()` turns pandera's failure cases into
one row per (record, field, rule) for the quarantine table.

Rule codes (the `rule` column of `quarantine`): required, duplicate_id, email_syntax,
date_out_of_range (before 1900 or later than run time + tolerance; birth dates: later than run
time), negative_amount, unknown_status, unknown_channel, currency_code, nps_out_of_range,
csat_out_of_range, discount_exceeds_gross, net_amount_mismatch (net ≠ gross − discount by more than
0.01; both are quarantined, not warned about: revenue is computed from these amounts, and a row
whose amounts contradict each other has no right revenue), non_positive_quantity; parse failures
from the mapping are parse_<type> (parse_date, parse_decimal…).

A few failures of descriptive fields (a CRM e-mail or birth date, an order's or answer's e-mail)
withhold the value instead of quarantining the row: the contract finds them like any other, and
`ccv.ingest.withheld` decides what each costs.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ccv.config import CHANNELS, CONSENT_CHANNELS, KEY_FIELD, ORDER_STATUSES
from ccv.ingest.contract_sql import violations_sql
from ccv.ingest.mapping import EMAIL_PATTERN, parse_violations_sql

EARLIEST = pd.Timestamp("1900-01-01")
AMOUNT_TOLERANCE = 0.01
# Row-level checks that look at several fields: the field the quarantine row names.
CROSS_FIELD_RULES = {
    "discount_exceeds_gross": "discount_amount",
    "net_amount_mismatch": "net_amount",
}
# The same rules for the DuckDB executor (contract_sql): field reported, failing SQL, fields needed.
CROSS_FIELD_SQL = {
    "discount_exceeds_gross": (
        "discount_amount",
        "discount_amount > gross_amount and gross_amount >= 0",
        ["gross_amount", "discount_amount"],
    ),
    "net_amount_mismatch": (
        "net_amount",
        f"abs(gross_amount - discount_amount - net_amount) > {AMOUNT_TOLERANCE}",
        ["gross_amount", "discount_amount", "net_amount"],
    ),
}
# Files with more rows than this are validated by running the contract in DuckDB (contract_sql):
# pandera on pandas needs ~3 s per million rows; the SQL translation of the same schema, ~0.2 s.
PANDAS_MAX_ROWS = 200_000


def _col(*checks: pa.Check, nullable: bool = True, unique: bool = False) -> pa.Column:
    return pa.Column(
        checks=list(checks),
        nullable=nullable,
        unique=unique,
        report_duplicates="exclude_first",
        required=False,
    )


def _not_future(latest: pd.Timestamp) -> pa.Check:
    return pa.Check.in_range(EARLIEST, latest, error="date_out_of_range")


def _order_amount_checks() -> list[pa.Check]:
    """Cross-field amount rules; a row lacking one of the amounts involved passes."""

    def discount_le_gross(df: pd.DataFrame) -> pd.Series:
        if not {"gross_amount", "discount_amount"} <= set(df.columns):
            return pd.Series(True, index=df.index)
        # a negative gross is already `negative_amount`; do not report it twice
        bad = (df["discount_amount"] > df["gross_amount"]) & (df["gross_amount"] >= 0)
        return ~bad.fillna(False).astype(bool)

    def net_is_gross_minus_discount(df: pd.DataFrame) -> pd.Series:
        if not {"gross_amount", "discount_amount", "net_amount"} <= set(df.columns):
            return pd.Series(True, index=df.index)
        gap = (df["gross_amount"] - df["discount_amount"] - df["net_amount"]).abs()
        bad = gap.astype("float64") > AMOUNT_TOLERANCE + 1e-9
        return ~bad.fillna(False).astype(bool)

    return [
        pa.Check(discount_le_gross, error="discount_exceeds_gross"),
        pa.Check(net_is_gross_minus_discount, error="net_amount_mismatch"),
    ]


def contract(kind: str, now: dt.datetime, future_tolerance_days: int = 1) -> pa.DataFrameSchema:
    """The contract for canonical rows of `kind`, judged at time `now`."""
    latest = pd.Timestamp(now) + pd.Timedelta(days=future_tolerance_days)
    key = KEY_FIELD[kind]
    email = _col(pa.Check.str_matches(EMAIL_PATTERN, error="email_syntax"))
    amount = _col(pa.Check.ge(0, error="negative_amount"))
    columns: dict[str, pa.Column] = {key: _col(nullable=False, unique=kind != "order_lines")}
    checks: list[pa.Check] = []
    unique: list[str] | None = None
    if kind == "customers":
        columns |= {
            "email": email,
            "birth_date": _col(_not_future(pd.Timestamp(now))),
            "created_at": _col(_not_future(latest)),
            "updated_at": _col(_not_future(latest)),
        }
    elif kind == "orders":
        columns |= {
            "email": email,
            "ordered_at": _col(_not_future(latest), nullable=False),
            "status": _col(pa.Check.isin(ORDER_STATUSES, error="unknown_status"), nullable=False),
            "channel": _col(pa.Check.isin(CHANNELS, error="unknown_channel"), nullable=False),
            "gross_amount": amount,
            "discount_amount": amount,
            "net_amount": _col(pa.Check.ge(0, error="negative_amount"), nullable=False),
            "currency": _col(pa.Check.str_matches(r"^[A-Z]{3}$", error="currency_code")),
        }
    elif kind == "surveys":
        columns |= {
            "email": email,
            "submitted_at": _col(_not_future(latest), nullable=False),
            "nps": _col(pa.Check.in_range(0, 10, error="nps_out_of_range")),
            "csat": _col(pa.Check.in_range(1, 5, error="csat_out_of_range")),
        }
    elif kind == "consents":
        columns |= {
            "email": email,
            "channel": _col(
                pa.Check.isin(CONSENT_CHANNELS, error="unknown_channel"), nullable=False
            ),
            "is_opt_in": _col(nullable=False),
            "consented_at": _col(_not_future(latest), nullable=False),
        }
    elif kind == "order_lines":
        columns |= {
            "line_number": _col(nullable=False),
            "quantity": _col(pa.Check.gt(0, error="non_positive_quantity")),
            "unit_price": amount,
            "line_amount": amount,
        }
        unique = ["order_id", "line_number"]
    if kind == "orders":
        checks = _order_amount_checks()
    return pa.DataFrameSchema(
        columns,
        checks=checks,
        unique=unique,
        report_duplicates="exclude_first",
        name=f"canonical_{kind}",
        strict=False,
    )


def violations(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Validate `frame` (with a `_row` column); return `_row, field, rule, raw_value` per failure.

    A required column the mapping did not provide fails every row of the frame with rule
    `required_field`, which cannot happen for configured sources (config validation demands keys).
    """
    out_columns = ["_row", "field", "rule", "raw_value"]
    if frame.empty:
        return pd.DataFrame(columns=out_columns)
    indexed = frame.set_index("_row", drop=False)
    try:
        schema.validate(indexed, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        cross = cases["check"].map(CROSS_FIELD_RULES)
        cases = cases[cross.isna() | (cross == cases["column"])]
        # a composite-key duplicate names no single column; report it on the first key column
        cases = cases.assign(column=cases["column"].fillna(KEY_FIELD.get(_kind(schema), "")))
        if schema.unique:  # a composite-key duplicate is reported once, on its first column
            composite = cases["check"] == "multiple_fields_uniqueness"
            cases = cases[~composite | (cases["column"] == schema.unique[0])]
        result = pd.DataFrame(
            {
                "_row": cases["index"].astype("int64"),
                "field": cases["column"].astype(str),
                "rule": cases["check"].astype(str).map(_rule_name),
                "raw_value": cases["failure_case"].map(
                    lambda v: None if v is None or pd.isna(v) else str(v)
                ),
            }
        )
        return result.drop_duplicates(ignore_index=True)
    return pd.DataFrame(columns=out_columns)


def _kind(schema: pa.DataFrameSchema) -> str:
    return (schema.name or "").removeprefix("canonical_")


def _rule_name(check: str) -> str:
    if check == "not_nullable":
        return "required"
    if check in ("field_uniqueness", "multiple_fields_uniqueness"):
        return "duplicate_id"
    return check


def row_violations(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    fields: list[str],
    table: str,
    now: dt.datetime,
    tolerance_days: int,
) -> pd.DataFrame:
    """Parse violations and contract violations of the mapped rows in `table`.

    The contract is pandera's; small files are validated by pandera itself, large ones by the
    same schema translated to SQL (see contract_sql), so that memory and time stay flat."""
    parse = con.execute(parse_violations_sql(fields, table)).df()
    schema = contract(kind, now, tolerance_days)
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    if rows > PANDAS_MAX_ROWS:
        rules = con.execute(violations_sql(schema, fields, table, CROSS_FIELD_SQL)).df()
    else:
        typed = con.execute(f"select _row, {', '.join(fields)} from {table}").df()
        rules = violations(typed, schema)
    # A value that did not parse is reported once, as a parse violation, not again as "required".
    parsed_bad = set(zip(parse["_row"], parse["field"], strict=True))
    rules = rules[
        [(r, f) not in parsed_bad for r, f in zip(rules["_row"], rules["field"], strict=True)]
    ]
    frames = [f for f in (parse, rules) if not f.empty]
    if not frames:
        return pd.DataFrame(
            {"_row": pd.Series([], dtype="int64"), "field": [], "rule": [], "raw_value": []}
        ).astype({"field": str, "rule": str, "raw_value": str})
    out = pd.concat(frames, ignore_index=True)
    out["_row"] = out["_row"].astype("int64")
    return out.astype({"field": str, "rule": str, "raw_value": "object"})
