"""Build the `customer_value` table: BG/NBD + Gamma-Gamma CLV for every customer, once per run.

This is Python rather than a SQL model because the fit is a numerical optimisation. It runs
between the core and marts layers (it reads `customers` and the core model `purchase_days`;
`customer_360` reads it).

Inputs are day-granular (several completed orders on one day are one purchase of their summed
value, as in the CDNOW benchmark data) and use the whole order history up to the as-of date,
not the RFM window: BG/NBD models a customer from their first purchase on. Time is in days.

A data set the models cannot fit (a new shop with a handful of customers, nobody buying twice)
must not stop the nightly run: the table is then written with NULL predictions and
`model_fitted = false`, and the reason is returned to the caller for the run log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ccv.analytics.clv import (
    Fit,
    FitError,
    bgnbd_expected_purchases,
    bgnbd_probability_alive,
    discounted_expected_purchases,
    distinct_rows,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_value,
)

log = logging.getLogger(__name__)

PREDICTION_DAYS = (90, 180, 365)
MIN_BUYERS = 20  # fewer customers with a purchase than this: BG/NBD is not fitted
MIN_REPEAT_BUYERS = 10  # fewer repeat buyers with spend than this: Gamma-Gamma is not fitted

INPUTS_SQL = """
with

settings as (

    select cast($as_of as date) as as_of_date

),

customers as (

    select customer_id from customers

),

purchase_days as (

    select * from purchase_days

),

per_customer as (

    select
        purchase_days.customer_id,
        min(purchase_days.ordered_on) as first_purchase_on,
        max(purchase_days.ordered_on) as last_purchase_on,
        count(*) as purchase_days,
        -- repeat purchase days are those with a previous one
        avg(purchase_days.day_value) filter (where purchase_days.interval_days is not null)
            as avg_repeat_purchase_value

    from purchase_days
    cross join settings
    where purchase_days.ordered_on <= settings.as_of_date
    group by purchase_days.customer_id

),

final as (

    select
        customers.customer_id,
        per_customer.first_purchase_on,
        per_customer.last_purchase_on,
        coalesce(per_customer.purchase_days, 0) as purchase_days,
        per_customer.purchase_days - 1 as repeat_purchase_days,
        date_diff('day', per_customer.first_purchase_on, per_customer.last_purchase_on)
            as first_to_last_purchase_days,
        date_diff('day', per_customer.first_purchase_on, settings.as_of_date)
            as first_purchase_to_as_of_days,
        cast(per_customer.avg_repeat_purchase_value as double) as avg_repeat_purchase_value

    from customers
    cross join settings
    left join per_customer on customers.customer_id = per_customer.customer_id

)

select * from final order by customer_id
"""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("customer_id", "varchar"),
    # run parameters
    ("as_of_date", "date"),
    ("clv_horizon_months", "integer"),
    ("monthly_discount_rate", "double"),
    # model inputs
    ("first_purchase_on", "date"),
    ("last_purchase_on", "date"),
    ("purchase_days", "integer"),
    ("repeat_purchase_days", "integer"),
    ("first_to_last_purchase_days", "integer"),
    ("first_purchase_to_as_of_days", "integer"),
    ("avg_repeat_purchase_value", "decimal(18, 2)"),
    # predictions
    ("probability_alive", "double"),
    ("expected_purchases_90d", "double"),
    ("expected_purchases_180d", "double"),
    ("expected_purchases_365d", "double"),
    ("expected_avg_order_value", "decimal(18, 2)"),
    ("clv", "decimal(18, 2)"),
    # model status
    ("model_fitted", "boolean"),
    ("spend_model_fitted", "boolean"),
)
TABLE_DDL = (
    "create or replace table customer_value (\n"
    + ",\n".join(f"    {name} {sql_type}" for name, sql_type in COLUMNS)
    + "\n)"
)

OUTPUT_COLUMNS = (
    "probability_alive",
    *(f"expected_purchases_{d}d" for d in PREDICTION_DAYS),
    "expected_avg_order_value",
    "clv",
)


@dataclass(frozen=True)
class CustomerValueResult:
    """What `build_customer_value` did: counts, fitted models, and why a model was not fitted."""

    customers: int
    buyers: int
    repeat_buyers: int
    bgnbd: Fit | None
    gamma_gamma: Fit | None
    bgnbd_error: str | None = None
    gamma_gamma_error: str | None = None


def read_inputs(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> pd.DataFrame:
    """One row per customer in `customers` with the model inputs (NULL without a purchase)."""
    return con.execute(INPUTS_SQL, {"as_of": as_of}).df()


@dataclass(frozen=True)
class BuyerInputs:
    """The model inputs of the customers with a purchase, as float arrays (m is NaN for x = 0)."""

    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray


def predict(
    buyers: BuyerInputs,
    horizon_months: int,
    monthly_discount_rate: float = 0.0,
    min_buyers: int = MIN_BUYERS,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
) -> tuple[dict[str, np.ndarray], dict[str, bool], CustomerValueResult]:
    """Fit both models on `buyers`; return one prediction array per output column (NaN where a
    model is not fitted), whether each model fitted, and what was done.

    BG/NBD predictions depend on (x, t_x, T) only: they are computed once per distinct triple
    and spread back to the buyers sharing it (the same values; 2F1 is evaluated 15 times per
    triple for the 90/180/365-day and the monthly CLV sums, so every shared triple saves work).
    """
    x, t_x, T, m = buyers.x, buyers.t_x, buyers.T, buyers.m
    out = {column: np.full(x.size, np.nan) for column in OUTPUT_COLUMNS}
    fitted = {"model_fitted": False, "spend_model_fitted": False}
    repeat_buyers = int(np.sum((x > 0) & (m > 0)))

    bgnbd = gamma_gamma = None
    bgnbd_error = gamma_gamma_error = None
    (ux, ut, uT), triple, _ = distinct_rows(x, t_x, T)
    try:
        bgnbd = fit_bgnbd(x, t_x, T, min_customers=min_buyers)
        predictions = {"probability_alive": bgnbd_probability_alive(bgnbd.params, ux, ut, uT)}
        for days in PREDICTION_DAYS:
            predictions[f"expected_purchases_{days}d"] = bgnbd_expected_purchases(
                bgnbd.params, days, ux, ut, uT
            )
        # a degenerate optimum (e.g. r and alpha running off together when every customer buys
        # at the same pace) can leave 2F1 unevaluable: then the model is not usable at all
        if not all(np.isfinite(v).all() for v in predictions.values()):
            raise FitError(f"BG/NBD predictions are not finite with parameters {bgnbd.params}")
        for column, values in predictions.items():
            out[column] = values[triple]
        fitted["model_fitted"] = True
    except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        bgnbd, bgnbd_error = None, str(exc)
        log.warning("customer_value: BG/NBD not fitted: %s", exc)
    try:
        gamma_gamma = fit_gamma_gamma(x, m, min_customers=min_repeat_buyers)
        spend = {"expected_avg_order_value": gamma_gamma_expected_value(gamma_gamma.params, x, m)}
        if bgnbd is not None:
            # customer_lifetime_value, with its purchase part computed per distinct triple
            purchases = discounted_expected_purchases(
                bgnbd.params, ux, ut, uT, horizon_months, monthly_discount_rate
            )
            spend["clv"] = purchases[triple] * spend["expected_avg_order_value"]
        # same rule as above: all customers get a value or none does (the marts check holds
        # clv to be present exactly when both models fitted)
        if not all(np.isfinite(v).all() for v in spend.values()):
            raise FitError(f"spend or CLV predictions are not finite with {gamma_gamma.params}")
        out.update(spend)
        fitted["spend_model_fitted"] = True
    except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        gamma_gamma, gamma_gamma_error = None, str(exc)
        log.warning("customer_value: Gamma-Gamma not fitted: %s", exc)

    result = CustomerValueResult(
        customers=0,  # set by the caller, which knows the non-buyers too
        buyers=int(x.size),
        repeat_buyers=repeat_buyers,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        bgnbd_error=bgnbd_error,
        gamma_gamma_error=gamma_gamma_error,
    )
    return out, fitted, result


def build_customer_value(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.0,
    min_buyers: int = MIN_BUYERS,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
) -> CustomerValueResult:
    """(Re)create table `customer_value` from `customers` and `purchase_days` as of `as_of`.

    One row per customer in `customers`; customers without a completed order get
    purchase_days = 0 and NULL inputs and predictions. Never raises for data the models cannot
    fit: predictions are then NULL with model_fitted / spend_model_fitted false.

    The inputs stay in DuckDB (a temporary table); only the buyers' four numeric inputs travel to
    NumPy and only the prediction arrays come back (as Arrow, keyed by row position), so no
    per-customer Python objects are made at a million customers.
    """
    if horizon_months < 0:
        raise ValueError("horizon_months must be >= 0")
    if monthly_discount_rate < 0:
        raise ValueError("monthly_discount_rate must be >= 0")
    con.execute(
        "create or replace temp table _customer_value_inputs as "
        f"select row_number() over (order by customer_id) as row_index, * from ({INPUTS_SQL})",
        {"as_of": as_of},
    )
    try:
        columns = con.execute(
            """
            select row_index, repeat_purchase_days, first_to_last_purchase_days,
                   first_purchase_to_as_of_days,
                   coalesce(avg_repeat_purchase_value, 'NaN'::double) as avg_repeat_purchase_value
            from _customer_value_inputs where purchase_days > 0 order by row_index
            """
        ).fetchnumpy()
        buyers = BuyerInputs(
            *(
                np.asarray(columns[name], dtype=np.float64)
                for name in (
                    "repeat_purchase_days",
                    "first_to_last_purchase_days",
                    "first_purchase_to_as_of_days",
                    "avg_repeat_purchase_value",
                )
            )
        )
        out, fitted, result = predict(
            buyers, horizon_months, monthly_discount_rate, min_buyers, min_repeat_buyers
        )
        customers = con.execute("select count(*) from _customer_value_inputs").fetchone()[0]
        predictions = pa.table(
            {
                "row_index": pa.array(np.asarray(columns["row_index"], dtype=np.int64)),
                # NaN marks "no prediction": NULL in the table
                **{name: pa.array(values, from_pandas=True) for name, values in out.items()},
            }
        )
        _write_table(con, predictions, as_of, horizon_months, monthly_discount_rate, fitted)
    finally:
        con.execute("drop table if exists _customer_value_inputs")
    return dataclasses.replace(result, customers=customers)


def _write_table(
    con: duckdb.DuckDBPyConnection,
    predictions: pa.Table,
    as_of: dt.date,
    horizon_months: int,
    monthly_discount_rate: float,
    fitted: dict[str, bool],
) -> None:
    """Create `customer_value` (COLUMNS, in customer_id order) from the inputs and predictions."""
    con.execute(TABLE_DDL)
    view = "_customer_value_predictions"
    con.register(view, predictions)
    try:
        names = ", ".join(name for name, _ in COLUMNS)
        outputs = ",\n".join(f"p.{name}" for name in OUTPUT_COLUMNS)
        con.execute(
            f"""
            insert into customer_value ({names})
            select
                i.customer_id,
                cast($as_of as date),
                $horizon_months,
                $rate,
                i.first_purchase_on,
                i.last_purchase_on,
                i.purchase_days,
                i.repeat_purchase_days,
                i.first_to_last_purchase_days,
                i.first_purchase_to_as_of_days,
                i.avg_repeat_purchase_value,
                {outputs},
                i.purchase_days > 0 and $model_fitted,
                i.purchase_days > 0 and $spend_model_fitted
            from _customer_value_inputs as i
            left join {view} as p on p.row_index = i.row_index
            order by i.row_index
            """,
            {
                "as_of": as_of,
                "horizon_months": horizon_months,
                "rate": float(monthly_discount_rate),
                **fitted,
            },
        )
    finally:
        con.unregister(view)
