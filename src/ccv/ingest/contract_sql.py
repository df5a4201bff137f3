"""Run a pandera contract inside DuckDB, for files too big to validate in pandas quickly.

The contract stays the pandera schema of `contracts.contract()`: this module only *executes* it,
by translating each of its checks (nullable, unique, the built-in range / set / pattern checks,
and the cross-field checks whose SQL is declared next to their pandas function) into a predicate
over the mapped table. It yields the same `_row, field, rule` as `contracts.violations()` (a parity
test runs every bad-input case both ways); `raw_value` is the typed value as DuckDB prints it.
A check it cannot translate raises, so a new rule can never be skipped silently.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pandera.pandas as pa

from ccv.ingest.readers import _sql_str, quote_ident


def _literal(value) -> str:
    if isinstance(value, pd.Timestamp | dt.datetime):
        return f"timestamp '{pd.Timestamp(value).isoformat(sep=' ')}'"
    if isinstance(value, str):
        return _sql_str(value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)


def _failing(check: pa.Check, col: str) -> str:
    """SQL that is true where the non-null value `col` fails `check`."""
    stats = check.statistics or {}
    name = check.name
    if name == "greater_than_or_equal_to":
        return f"{col} < {_literal(stats['min_value'])}"
    if name == "greater_than":
        return f"{col} <= {_literal(stats['min_value'])}"
    if name == "less_than_or_equal_to":
        return f"{col} > {_literal(stats['max_value'])}"
    if name == "in_range":
        low = ">=" if stats.get("include_min", True) else ">"
        high = "<=" if stats.get("include_max", True) else "<"
        return (
            f"not ({col} {low} {_literal(stats['min_value'])} "
            f"and {col} {high} {_literal(stats['max_value'])})"
        )
    if name == "isin":
        allowed = ", ".join(_literal(v) for v in stats["allowed_values"])
        return f"{col} not in ({allowed})"
    if name == "str_matches":
        # pandera uses re.match: anchored at the start only, like a leading `^`
        pattern = stats["pattern"]
        pattern = pattern if pattern.startswith("^") else "^" + pattern
        return f"not regexp_matches({col}, {_sql_str(pattern)})"
    raise NotImplementedError(f"no SQL translation for pandera check '{name}' on {col}")


def _select(row_filter: str, table: str, field: str, rule: str, value: str) -> str:
    return (
        f"select _row, {_sql_str(field)} as field, {_sql_str(rule)} as rule, "
        f"cast({value} as varchar) as raw_value from {table} where {row_filter}"
    )


def _duplicates(table: str, columns: list[str], field: str) -> str:
    """Every occurrence of a key after its first (pandera's report_duplicates=exclude_first)."""
    keys = ", ".join(quote_ident(c) for c in columns)
    not_null = " and ".join(f"{quote_ident(c)} is not null" for c in columns)
    ranked = (
        f"(select _row, {quote_ident(field)}, "
        f"row_number() over (partition by {keys} order by _row) as _occurrence "
        f"from {table} where {not_null})"
    )
    return _select("_occurrence > 1", ranked, field, "duplicate_id", quote_ident(field))


def violations_sql(
    schema: pa.DataFrameSchema, fields: list[str], table: str, cross_field_sql: dict[str, str]
) -> str:
    """One query returning `_row, field, rule, raw_value` for every failure in `table`."""
    present = set(fields)
    parts = []
    for name, column in schema.columns.items():
        if name not in present:
            continue
        col = quote_ident(name)
        if not column.nullable:
            parts.append(_select(f"{col} is null", table, name, "required", "null"))
        if column.unique:
            parts.append(_duplicates(table, [name], name))
        for check in column.checks:
            failing = f"{col} is not null and {_failing(check, col)}"
            parts.append(_select(failing, table, name, check.error or check.name, col))
    if schema.unique and set(schema.unique) <= present:
        parts.append(_duplicates(table, list(schema.unique), schema.unique[0]))
    for check in schema.checks:
        field, sql, needs = _cross_field(check, cross_field_sql)
        if set(needs) <= present:
            parts.append(_select(f"coalesce({sql}, false)", table, field, check.error, field))
    if not parts:
        return "select null::bigint as _row, null as field, null as rule, null as raw_value limit 0"
    return "\nunion all\n".join(parts)


def _cross_field(check: pa.Check, cross_field_sql: dict[str, str]) -> tuple[str, str, list[str]]:
    try:
        return cross_field_sql[check.error]
    except KeyError:
        raise NotImplementedError(f"no SQL for dataframe check '{check.error}'") from None
