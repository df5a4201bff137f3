"""Turn a source's own columns into canonical, typed fields, in one DuckDB select.

For every canonical field the mapping yields two columns: the trimmed source text (`_raw_<field>`,
kept for quarantine messages) and the typed value (`<field>`). A value present in the source that
does not parse to the field's type is a *parse violation*: the row is quarantined with the field,
the rule and the raw text. Unmapped source columns are kept as JSON in `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccv.config import CANONICAL_FIELDS, SourceConfig
from ccv.ingest.readers import _sql_str, quote_ident

DATE_FIELDS = {"birth_date"}
TIMESTAMP_FIELDS = {"created_at", "updated_at", "ordered_at", "submitted_at"}
DECIMAL_FIELDS = {"gross_amount", "discount_amount", "net_amount"}
INTEGER_FIELDS = {"nps", "csat"}
BOOLEAN_FIELDS = {"email_opt_in", "sms_opt_in"}
TRUE_WORDS = ("true", "t", "yes", "y", "1", "opt-in", "opted in")
FALSE_WORDS = ("false", "f", "no", "n", "0", "opt-out", "opted out")


def field_type(field: str) -> str:
    """The DuckDB type of a canonical field."""
    if field in DATE_FIELDS:
        return "date"
    if field in TIMESTAMP_FIELDS:
        return "timestamp"
    if field in DECIMAL_FIELDS:
        return "decimal(18,2)"
    if field in INTEGER_FIELDS:
        return "integer"
    if field in BOOLEAN_FIELDS:
        return "boolean"
    return "varchar"


@dataclass(frozen=True)
class MappedSelect:
    """SQL selecting canonical fields from a read file, and the checks on it."""

    sql: str
    fields: list[str]
    missing_columns: list[str]


def _raw_expr(source: SourceConfig, field: str) -> str:
    if field in source.constants:
        return _sql_str(source.constants[field])
    text = f"nullif(trim({quote_ident(source.columns[field])}), '')"
    mapping = source.values.get(field)
    if not mapping:
        return text
    cases = " ".join(
        f"when {_sql_str(k.strip().upper())} then {_sql_str(v)}" for k, v in mapping.items()
    )
    return f"(case upper({text}) {cases} else {text} end)"


def _typed_expr(source: SourceConfig, field: str, raw: str, decimal_comma: bool) -> str:
    kind = field_type(field)
    fmt = source.formats.get(field)
    if kind == "date":
        if fmt:
            return f"cast(try_strptime({raw}, {_sql_str(fmt)}) as date)"
        return f"try_cast({raw} as date)"
    if kind == "timestamp":
        if fmt:
            return f"try_strptime({raw}, {_sql_str(fmt)})::timestamp"
        # ISO 8601, with or without offset; offsets are converted to UTC.
        return f"cast(try_cast({raw} as timestamptz) at time zone 'UTC' as timestamp)"
    if kind == "decimal(18,2)":
        text = raw
        if decimal_comma:
            text = f"replace(replace({raw}, '.', ''), ',', '.')"
        return f"try_cast(replace({text}, ' ', '') as decimal(18,2))"
    if kind == "integer":
        return f"try_cast({raw} as integer)"
    if kind == "boolean":
        true_words = ", ".join(_sql_str(w) for w in TRUE_WORDS)
        false_words = ", ".join(_sql_str(w) for w in FALSE_WORDS)
        return (
            f"(case when lower({raw}) in ({true_words}) then true "
            f"when lower({raw}) in ({false_words}) then false end)"
        )
    return raw


def mapped_select(source: SourceConfig, table: str, source_columns: list[str]) -> MappedSelect:
    """Build the select that maps `table` (a read file) to canonical fields of `source.kind`."""
    present = set(source_columns)
    missing = [col for col in source.columns.values() if col not in present]
    fields = [
        f for f in CANONICAL_FIELDS[source.kind] if f in source.columns or f in source.constants
    ]
    decimal_comma = source.csv.decimal_comma
    select = ["_row"]
    for field in fields:
        raw = _raw_expr(source, field)
        select.append(f"{raw} as {quote_ident('_raw_' + field)}")
        select.append(f"{_typed_expr(source, field, raw, decimal_comma)} as {quote_ident(field)}")
    mapped = set(source.columns.values())
    extra_cols = [c for c in source_columns if c not in mapped]
    if extra_cols:
        pairs = ", ".join(f"{_sql_str(c)}, {quote_ident(c)}" for c in extra_cols)
        select.append(f"json_object({pairs}) as extra")
    else:
        select.append("null::json as extra")
    all_pairs = ", ".join(f"{_sql_str(c)}, {quote_ident(c)}" for c in source_columns)
    select.append(
        f"json_object({all_pairs}) as raw_record" if source_columns else "null as raw_record"
    )
    sql = f"select {', '.join(select)} from {table}"
    return MappedSelect(sql, fields, missing)


def parse_violations_sql(fields: list[str], mapped_table: str) -> str:
    """Rows whose raw text for a field is present but did not parse to the field's type."""
    parts = [
        f"select _row, {_sql_str(field)} as field, "
        f"{_sql_str('parse_' + field_type(field).split('(')[0])} as rule, "
        f" {quote_ident('_raw_' + field)} as raw_value "
        f"from {mapped_table} where {quote_ident('_raw_' + field)} is not null "
        f"and {quote_ident(field)} is null"
        for field in fields
        if field_type(field) != "varchar"
    ]
    if not parts:
        return "select null::bigint as _row, null as field, null as rule, null as raw_value limit 0"
    return " union all ".join(parts)
