"""Build the `customer_value` table: BG/NBD + Gamma-Gamma CLV for every customer, once per run.

This is Python rather than a SQL model because the fit is a numerical optimisation. It runs
between the core and marts layers (it reads `customers` and `orders`; `customer_360` reads it).

Inputs are day-granular (several completed orders on one day are one purchase of their summed
value, as in the CDNOW benchmark data) and use the whole order history up to the as-of date,
not the RFM window: BG/NBD models a customer from their first purchase on. Time is in days.

A data set the models cannot fit (a new shop with a handful of customers, nobody buying twice)
must not stop the nightly run: the table is then written with NULL predictions and
`model_fitted = false`, and the reason is returned to the caller for the run log.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ccv.analytics.clv import (
    Fit,
    FitError,
    bgnbd_expected_purchases,
    bgnbd_probability_alive,
    customer_lifetime_value,
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

orders as (

    select * from orders

),

purchase_days as (

    select
        orders.customer_id,
        orders.ordered_on,
        sum(orders.revenue_amount) as day_value

    from orders
    cross join settings
    where
        orders.customer_id is not null
        and orders.status = 'completed'
        and orders.ordered_on <= settings.as_of_date
    group by orders.customer_id, orders.ordered_on

),

numbered as (

    select
        *,
        row_number() over (partition by customer_id order by ordered_on) as day_number

    from purchase_days

),

per_customer as (

    select
        customer_id,
        min(ordered_on) as first_purchase_on,
        max(ordered_on) as last_purchase_on,
        count(*) as purchase_days,
        avg(day_value) filter (where day_number > 1) as avg_repeat_purchase_value

    from numbered
    group by customer_id

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


def predict(
    inputs: pd.DataFrame,
    horizon_months: int,
    monthly_discount_rate: float = 0.0,
    min_buyers: int = MIN_BUYERS,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
) -> tuple[pd.DataFrame, CustomerValueResult]:
    """Fit both models on the buyers in `inputs` and add the prediction columns to a copy."""
    out = inputs.copy()
    for column in OUTPUT_COLUMNS:
        out[column] = np.nan
    out["model_fitted"] = False
    out["spend_model_fitted"] = False

    buyers = out["purchase_days"].to_numpy() > 0
    b = out.loc[buyers]
    x = b["repeat_purchase_days"].to_numpy(dtype=np.float64)
    t_x = b["first_to_last_purchase_days"].to_numpy(dtype=np.float64)
    T = b["first_purchase_to_as_of_days"].to_numpy(dtype=np.float64)
    m = b["avg_repeat_purchase_value"].to_numpy(dtype=np.float64, na_value=np.nan)
    repeat_buyers = int(np.sum((x > 0) & (m > 0)))

    bgnbd = gamma_gamma = None
    bgnbd_error = gamma_gamma_error = None
    try:
        bgnbd = fit_bgnbd(x, t_x, T, min_customers=min_buyers)
        predictions = {"probability_alive": bgnbd_probability_alive(bgnbd.params, x, t_x, T)}
        for days in PREDICTION_DAYS:
            predictions[f"expected_purchases_{days}d"] = bgnbd_expected_purchases(
                bgnbd.params, days, x, t_x, T
            )
        # a degenerate optimum (e.g. r and alpha running off together when every customer buys
        # at the same pace) can leave 2F1 unevaluable: then the model is not usable at all
        if not all(np.isfinite(v).all() for v in predictions.values()):
            raise FitError(f"BG/NBD predictions are not finite with parameters {bgnbd.params}")
        for column, values in predictions.items():
            out.loc[buyers, column] = values
        out.loc[buyers, "model_fitted"] = True
    except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        bgnbd, bgnbd_error = None, str(exc)
        log.warning("customer_value: BG/NBD not fitted: %s", exc)
    try:
        gamma_gamma = fit_gamma_gamma(x, m, min_customers=min_repeat_buyers)
        spend = {"expected_avg_order_value": gamma_gamma_expected_value(gamma_gamma.params, x, m)}
        if bgnbd is not None:
            spend["clv"] = customer_lifetime_value(
                bgnbd.params,
                gamma_gamma.params,
                x,
                t_x,
                T,
                m,
                horizon_months,
                monthly_discount_rate,
            )
        # same rule as above: all customers get a value or none does (the marts check holds
        # clv to be present exactly when both models fitted)
        if not all(np.isfinite(v).all() for v in spend.values()):
            raise FitError(f"spend or CLV predictions are not finite with {gamma_gamma.params}")
        for column, values in spend.items():
            out.loc[buyers, column] = values
        out.loc[buyers, "spend_model_fitted"] = True
    except (FitError, ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        gamma_gamma, gamma_gamma_error = None, str(exc)
        log.warning("customer_value: Gamma-Gamma not fitted: %s", exc)

    result = CustomerValueResult(
        customers=len(out),
        buyers=int(buyers.sum()),
        repeat_buyers=repeat_buyers,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        bgnbd_error=bgnbd_error,
        gamma_gamma_error=gamma_gamma_error,
    )
    return out, result


def build_customer_value(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.0,
    min_buyers: int = MIN_BUYERS,
    min_repeat_buyers: int = MIN_REPEAT_BUYERS,
) -> CustomerValueResult:
    """(Re)create table `customer_value` from `customers` and `orders` as of `as_of`.

    One row per customer in `customers`; customers without a completed order get
    purchase_days = 0 and NULL inputs and predictions. Never raises for data the models cannot
    fit: predictions are then NULL with model_fitted / spend_model_fitted false.
    """
    if horizon_months < 0:
        raise ValueError("horizon_months must be >= 0")
    if monthly_discount_rate < 0:
        raise ValueError("monthly_discount_rate must be >= 0")
    inputs = read_inputs(con, as_of)
    table, result = predict(
        inputs, horizon_months, monthly_discount_rate, min_buyers, min_repeat_buyers
    )
    table.insert(1, "as_of_date", as_of)
    table.insert(2, "clv_horizon_months", horizon_months)
    table.insert(3, "monthly_discount_rate", float(monthly_discount_rate))
    table["model_fitted"] = table["model_fitted"].astype(bool)
    table["spend_model_fitted"] = table["spend_model_fitted"].astype(bool)

    con.execute(TABLE_DDL)
    view = "_customer_value_frame"
    con.register(view, table)
    try:
        columns = ", ".join(name for name, _ in COLUMNS)
        con.execute(f"insert into customer_value ({columns}) select {columns} from {view}")
    finally:
        con.unregister(view)
    return result
