"""The pandera contracts: what a valid canonical row of each kind is.

Types are already enforced by the mapping (a value that does not parse is a parse violation), so
the contracts hold the *rules*: required keys, unique ids per file (the first occurrence wins, later
duplicates are quarantined), value ranges, allowed values, email syntax, and dates that are neither
before 1900 nor in the future beyond a tolerance. `violations()` turns pandera's failure cases into
one row per (record, field, rule) for the quarantine table.

Rule codes (the `rule` column of `quarantine`): required, duplicate_id, email_syntax,
date_out_of_range (before 1900 or later than run time + tolerance; birth dates: later than run
time), negative_amount, unknown_status, unknown_channel, currency_code, nps_out_of_range,
csat_out_of_range; parse failures from the mapping are parse_<type> (parse_date, parse_decimal…).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from ccv.config import CHANNELS, KEY_FIELD, ORDER_STATUSES

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"
EARLIEST = pd.Timestamp("1900-01-01")


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


def contract(kind: str, now: dt.datetime, future_tolerance_days: int = 1) -> pa.DataFrameSchema:
    """The contract for canonical rows of `kind`, judged at time `now`."""
    latest = pd.Timestamp(now) + pd.Timedelta(days=future_tolerance_days)
    key = KEY_FIELD[kind]
    email = _col(pa.Check.str_matches(EMAIL_PATTERN, error="email_syntax"))
    amount = _col(pa.Check.ge(0, error="negative_amount"))
    columns: dict[str, pa.Column] = {key: _col(nullable=False, unique=True)}
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
    return pa.DataFrameSchema(columns, name=f"canonical_{kind}", strict=False)


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
        result = pd.DataFrame(
            {
                "_row": cases["index"].astype("int64"),
                "field": cases["column"].astype(str),
                "rule": cases["check"].astype(str).map(_rule_name),
                "raw_value": cases["failure_case"].map(
                    lambda v: None if v is None or v != v else str(v)
                ),
            }
        )
        return result.drop_duplicates(ignore_index=True)
    return pd.DataFrame(columns=out_columns)


def _rule_name(check: str) -> str:
    if check == "not_nullable":
        return "required"
    if check == "field_uniqueness":
        return "duplicate_id"
    return check
