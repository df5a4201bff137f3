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
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from ccv.ingest.mapping import RowCheck
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


@dataclass(frozen=True)
class UniqueKey:
    """Columns whose values must not repeat within a file; a repeat is reported on `field`."""

    columns: list[str]
    field: str


def row_checks(
    schema: pa.DataFrameSchema, fields: list[str], cross_field_sql: dict[str, tuple]
) -> list[RowCheck]:
    """Every per-row rule of `schema` on the mapped `fields` (all but uniqueness)."""
    present = set(fields)
    checks = []
    for name, column in schema.columns.items():
        if name not in present:
            continue
        col = quote_ident(name)
        if not column.nullable:
            checks.append(RowCheck(name, "required", f"{col} is null", "null"))
        for check in column.checks:
            failing = f"{col} is not null and {_failing(check, col)}"
            checks.append(RowCheck(name, check.error or check.name, failing, col))
    for check in schema.checks:
        field, sql, needs = _cross_field(check, cross_field_sql)
        if set(needs) <= present:
            checks.append(RowCheck(field, check.error, f"coalesce({sql}, false)", field))
    return checks


def unique_keys(schema: pa.DataFrameSchema, fields: list[str]) -> list[UniqueKey]:
    """The uniqueness rules of `schema` whose columns are all mapped."""
    present = set(fields)
    keys = [
        UniqueKey([name], name)
        for name, column in schema.columns.items()
        if column.unique and name in present
    ]
    if schema.unique and set(schema.unique) <= present:
        keys.append(UniqueKey(list(schema.unique), schema.unique[0]))
    return keys


def _select(row_filter: str, table: str, field: str, rule: str, value: str) -> str:
    return (
        f"select _row, {_sql_str(field)} as field, {_sql_str(rule)} as rule, "
        f"cast({value} as varchar) as raw_value from {table} where {row_filter}"
    )


def duplicates_sql(table: str, key: UniqueKey) -> str:
    """Every occurrence of a key after its first (pandera's report_duplicates=exclude_first).

    Only keys seen more than once are ranked: a hash aggregate over the file, then a window over
    the few repeats, instead of a window (a sort) over every row."""
    keys = ", ".join(quote_ident(c) for c in key.columns)
    not_null = " and ".join(f"{quote_ident(c)} is not null" for c in key.columns)
    repeated = f"(select {keys} from {table} where {not_null} group by all having count(*) > 1)"
    ranked = (
        f"(select _row, {quote_ident(key.field)}, "
        f"row_number() over (partition by {keys} order by _row) as _occurrence "
        f"from {table} semi join {repeated} using ({keys}))"
    )
    return _select("_occurrence > 1", ranked, key.field, "duplicate_id", quote_ident(key.field))


def violations_sql(
    schema: pa.DataFrameSchema, fields: list[str], table: str, cross_field_sql: dict[str, tuple]
) -> str:
    """One query returning `_row, field, rule, raw_value` for every failure in `table`."""
    parts = [
        _select(c.failing, table, c.field, c.rule, c.value)
        for c in row_checks(schema, fields, cross_field_sql)
    ]
    parts += [duplicates_sql(table, key) for key in unique_keys(schema, fields)]
    if not parts:
        return "select null::bigint as _row, null as field, null as rule, null as raw_value limit 0"
    return "\nunion all\n".join(parts)


def _cross_field(check: pa.Check, cross_field_sql: dict[str, str]) -> tuple[str, str, list[str]]:
    try:
        return cross_field_sql[check.error]
    except KeyError:
        raise NotImplementedError(f"no SQL for dataframe check '{check.error}'") from None
