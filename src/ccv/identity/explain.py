"""Why records were joined into one customer, or kept apart: `ccv explain`.

For a customer: its golden record, the source records behind it, and for every link the cluster
rests on a *waterfall* — the prior, then each field's comparison level and its weight (log2 of
m/u, with the term-frequency adjustment), summing to the match weight and probability. For a pair
of records: the same waterfall computed now, with this run's estimated parameters, and whether
the pair was linked, and if not, why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from ccv.identity.comparisons import DEFAULT_COMPARISONS, compare
from ccv.identity.scoring import Params, score

LABELS = {c.name: c.labels() for c in DEFAULT_COMPARISONS}


class ExplainError(LookupError):
    """The customer or record asked about is not in the warehouse."""


@dataclass
class Step:
    """One bar of a waterfall: a field's comparison level and the weight it adds."""

    field: str
    level: str
    weight: float


@dataclass
class Waterfall:
    """How one pair's match weight adds up."""

    left: str
    right: str
    rule: str
    prior: float | None
    steps: list[Step] = field(default_factory=list)
    match_weight: float = 0.0
    match_probability: float = 1.0

    def lines(self) -> list[str]:
        """The waterfall as text lines."""
        out = [f"{self.left}  ↔  {self.right}   [{self.rule}]"]
        if self.prior is None:
            out.append(f"  deterministic link: same {self.rule}")
            return out
        running = self.prior
        out.append(f"  {'prior (share of matching pairs)':<44}{self.prior:>+8.2f}")
        for step in self.steps:
            running += step.weight
            label = f"{step.field}: {step.level}"
            out.append(f"  {label:<44}{step.weight:>+8.2f}  → {running:+.2f}")
        out.append(
            f"  {'match weight / probability':<44}{self.match_weight:>+8.2f}"
            f"  p = {self.match_probability:.6f}"
        )
        return out


def latest_params(con: duckdb.DuckDBPyConnection) -> Params | None:
    """The m/u parameters estimated by the run that built this warehouse."""
    row = con.execute("select params from match_params order by run_id desc limit 1").fetchone()
    return Params.from_json(row[0]) if row and row[0] else None


def customer_links(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[Waterfall]:
    """The waterfall of every link that customer's cluster rests on."""
    evidence = con.execute(
        "select * from match_evidence where customer_id = ? order by match_weight desc",
        [customer_id],
    ).df()
    names = _record_names(con, customer_id)
    params = latest_params(con)
    prior = params.prior_weight() if params else None
    out = []
    for row in evidence.itertuples(index=False):
        row = row._asdict()
        left = names.get((row["left_source"], row["left_record_id"]), "?")
        right = names.get((row["right_source"], row["right_record_id"]), "?")
        if pd.isna(row.get("first_name_level")):
            out.append(Waterfall(left, right, row["rule"], None))
            continue
        steps = [
            Step(name, LABELS[name][int(row[f"{name}_level"])], float(row[f"{name}_weight"]))
            for name in LABELS
        ]
        out.append(
            Waterfall(
                left,
                right,
                "blocked by " + row["rule"],
                prior,
                steps,
                float(row["match_weight"]),
                float(row["match_probability"]),
            )
        )
    return out


def _record_names(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    """Readable names of a customer's identity records: CRM records by id, transaction groups
    by their kind, count and identifier (their keys are hashes)."""
    rows = con.execute(
        """
        select source, source_record_id,
               case when record_kind = 'customer' then source || ':' || source_record_id
                    else source || ' (' || transactions || ' ' || record_kind || 's, '
                         || coalesce(email, phone, loyalty_id, 'account reference') || ')'
               end
        from identity_records where customer_id = ?
        """,
        [customer_id],
    ).fetchall()
    return {(source, rid): name for source, rid, name in rows}


def explain_customer(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    """Golden record, source records, links and identity events of one customer."""
    result = con.execute("select * from customers where customer_id = ?", [customer_id])
    columns = [d[0] for d in result.description]
    row = result.fetchone()
    if row is None:
        raise ExplainError(f"no customer {customer_id!r} in the published warehouse")
    records = con.execute(
        """
        select record_kind, source, count(*) as records,
               list(source_record_id order by source_record_id)[:5] as examples
        from customer_xref where customer_id = ?
        group by all order by record_kind, source
        """,
        [customer_id],
    ).fetchall()
    events = con.execute(
        "select run_id, event_type, other_customer_id, reason from identity_events "
        "where customer_id = ? or other_customer_id = ? order by run_id",
        [customer_id, customer_id],
    ).fetchall()
    return {
        "golden": {k: v for k, v in zip(columns, row, strict=True) if v is not None},
        "records": records,
        "links": customer_links(con, customer_id),
        "events": events,
        "withheld": _withheld(con, customer_id),
    }


def _withheld(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[tuple]:
    """Values withheld from the customer's records (`source:record, field, rule, raw value`):
    why a golden field may be empty although a source delivered something."""
    tables = {t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()}
    if "withheld_values" not in tables:  # a warehouse from before withheld values
        return []
    return con.execute(
        """
        select distinct w.source || ':' || w.record_key, w.field, w.rule, w.raw_value
        from withheld_values as w
        semi join customer_xref as x
            on x.source = w.source and x.source_record_id = w.record_key
            and x.customer_id = ?
        order by all
        """,
        [customer_id],
    ).fetchall()


def explain_pair(con: duckdb.DuckDBPyConnection, left_key: str, right_key: str) -> dict:
    """Compare two records now, with this run's parameters; say whether and why they link."""
    keys = [left_key, right_key]
    frame = con.execute(
        "select *, source || ':' || source_record_id as record_key from identity_records "
        "where source || ':' || source_record_id in (?, ?)",
        keys,
    ).df()
    missing = [k for k in keys if k not in set(frame["record_key"])]
    if missing:
        raise ExplainError(f"no identity record {', '.join(missing)} (use SOURCE:RECORD_ID)")
    frame = frame.set_index("record_key").loc[keys].reset_index()
    frame = frame.rename(
        columns={
            "email": "std_email",
            "phone": "std_phone",
            "loyalty_id": "std_loyalty_id",
            "birth_date": "std_birth_date",
            "postcode": "std_postcode",
        }
    )
    frame["record_idx"] = np.arange(2, dtype=np.int64)
    same_customer = frame.loc[0, "customer_id"] == frame.loc[1, "customer_id"]
    params = latest_params(con)
    result = {
        "same_customer": bool(same_customer),
        "customers": frame["customer_id"].tolist(),
        "waterfall": None,
    }
    if params is None or frame["record_kind"].ne("customer").any():
        result["note"] = (
            "only customer records are scored; transactions link by identical "
            "email, phone, loyalty id or account reference"
        )
        return result
    pair = pd.DataFrame({"left": [0], "right": [1]})
    levels = compare(frame, pair, DEFAULT_COMPARISONS)
    # term frequencies over one pair mean nothing: score without the adjustment here
    scored = score(levels, params, tf_adjust=False).iloc[0]
    steps = [
        Step(
            c.name,
            LABELS[c.name][int(levels.loc[0, f"{c.name}_level"])],
            float(scored[f"{c.name}_weight"]),
        )
        for c in DEFAULT_COMPARISONS
    ]
    result["waterfall"] = Waterfall(
        left_key,
        right_key,
        "compared on request",
        params.prior_weight(),
        steps,
        float(scored["match_weight"]),
        float(scored["match_probability"]),
    )
    result["guarded"] = bool(scored["guarded"])
    return result


def as_json(explained: dict) -> str:
    """A JSON rendering (for tools); waterfalls become their lines."""

    def default(value):
        if isinstance(value, Waterfall):
            return value.lines()
        return str(value)

    return json.dumps(explained, default=default, indent=2)
