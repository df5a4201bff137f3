"""Validate a user's `--where` filter before it touches the warehouse.

Why: the filter comes from a command line or a scheduled job's parameters and ends up in SQL run
against a file full of personal data. String checks cannot tell `email like '%;%'` from a second
statement, so the filter is parsed by DuckDB's own parser (`json_serialize_sql`), the syntax tree
is walked against a whitelist, and the SQL that runs is *regenerated from the checked tree*
(`json_deserialize_sql`), never the text the user typed.

Accepted: a boolean expression over the known `customer_360` columns, literals, comparisons,
AND / OR / NOT, IN (a list), BETWEEN, LIKE / ILIKE, IS [NOT] NULL, casts to plain types,
arithmetic and the functions in `ALLOWED_FUNCTIONS`. Refused: subqueries, other tables or
table functions (`read_csv(...)`), more than one statement, semicolons, comments, window or
aggregate functions, and any column that `customer_360` does not have.
"""

from __future__ import annotations

import difflib
import json

import duckdb


class FilterRejected(ValueError):
    """The filter is not a safe boolean expression over customer_360's columns."""


ALLOWED_FUNCTIONS = frozenset(
    {
        # operators the parser turns into functions
        "~~",  # LIKE
        "!~~",  # NOT LIKE
        "~~*",  # ILIKE
        "!~~*",  # NOT ILIKE
        "+",
        "-",
        "*",
        "/",
        "%",
        "||",
        # scalar functions
        "lower",
        "upper",
        "trim",
        "length",
        "abs",
        "round",
        "floor",
        "ceil",
        "year",
        "month",
        "day",
        "date_part",
        "date_diff",
        "datediff",
        "current_date",
        "today",
        "starts_with",
        "ends_with",
        "contains",
        "coalesce",
        "least",
        "greatest",
    }
)
ALLOWED_TYPES = frozenset(
    {
        "integer",
        "bigint",
        "smallint",
        "double",
        "float",
        "decimal",
        "numeric",
        "varchar",
        "text",
        "date",
        "timestamp",
        "boolean",
    }
)
_COMPARISONS = frozenset(
    {
        "COMPARE_EQUAL",
        "COMPARE_NOTEQUAL",
        "COMPARE_LESSTHAN",
        "COMPARE_GREATERTHAN",
        "COMPARE_LESSTHANOREQUALTO",
        "COMPARE_GREATERTHANOREQUALTO",
        "COMPARE_DISTINCT_FROM",
        "COMPARE_NOT_DISTINCT_FROM",
    }
)
_OPERATORS = frozenset(
    {
        "OPERATOR_NOT",
        "OPERATOR_IS_NULL",
        "OPERATOR_IS_NOT_NULL",
        "COMPARE_IN",
        "COMPARE_NOT_IN",
        "OPERATOR_COALESCE",
    }
)
_FORBIDDEN_TEXT = (";", "--", "/*", "*/")
TABLE = "customer_360"


def _walk(node: object, columns: frozenset[str], where: str) -> None:
    """Raise FilterRejected unless every node of the expression tree is whitelisted."""
    if not isinstance(node, dict):
        raise FilterRejected(f"{where}: unexpected syntax")
    cls, kind = node.get("class"), node.get("type")
    if node.get("alias"):
        raise FilterRejected(f"{where}: aliases are not allowed")
    if cls == "COLUMN_REF":
        names = node.get("column_names", [])
        if len(names) != 1:
            raise FilterRejected(
                f"{where}: qualified column {'.'.join(names)!r}: name the column alone"
            )
        if names[0].lower() not in columns:
            close = difflib.get_close_matches(names[0].lower(), sorted(columns), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise FilterRejected(f"unknown column {names[0]!r}: not a column of {TABLE}{hint}")
        return
    if cls == "CONSTANT":
        return
    if cls == "COMPARISON" and kind in _COMPARISONS:
        _walk(node["left"], columns, where)
        _walk(node["right"], columns, where)
        return
    if cls == "CONJUNCTION" and kind in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        for child in node["children"]:
            _walk(child, columns, where)
        return
    if cls == "OPERATOR" and kind in _OPERATORS:
        for child in node["children"]:
            _walk(child, columns, where)
        return
    if cls == "BETWEEN":
        for part in ("input", "lower", "upper"):
            _walk(node[part], columns, where)
        return
    if cls == "CAST":
        type_expr = node.get("type_expr") or {}
        type_name = str(type_expr.get("type_name", "")).lower()
        if type_name not in ALLOWED_TYPES or type_expr.get("catalog") or type_expr.get("schema"):
            raise FilterRejected(f"{where}: cast to {type_name or '?'} is not allowed")
        _walk(node["child"], columns, where)
        return
    if cls == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if (
            name not in ALLOWED_FUNCTIONS
            or node.get("schema")
            or node.get("catalog")
            or node.get("filter") is not None
            or node.get("distinct")
            or node.get("export_state")
            or (node.get("order_bys") or {}).get("orders")
        ):
            raise FilterRejected(
                f"function {name!r} is not allowed in a filter "
                f"(allowed: {', '.join(sorted(f for f in ALLOWED_FUNCTIONS if f.isidentifier()))})"
            )
        for argument in node.get("arguments", []):
            if argument.get("name"):
                raise FilterRejected(f"{where}: named arguments are not allowed")
            _walk(argument["expression"], columns, where)
        return
    if cls == "SUBQUERY" or kind == "SUBQUERY":
        raise FilterRejected("subqueries are not allowed in a filter")
    raise FilterRejected(f"{where}: {str(kind or cls).lower()} is not allowed in a filter")


def validate_filter(
    con: duckdb.DuckDBPyConnection, where: str, columns: list[str] | frozenset[str]
) -> str:
    """Check `where` and return the SQL to use instead of it (regenerated from the parse tree).

    `con` is any DuckDB connection (only its parser and, for the boolean check, the column
    types in `customer_360` if it can see that table are used).
    """
    if not where or not where.strip():
        raise FilterRejected("empty filter")
    for token in _FORBIDDEN_TEXT:
        if token in where:
            raise FilterRejected(
                f"{token!r} is not allowed in a filter (one boolean expression, no statements "
                "or comments)"
            )
    known = frozenset(c.lower() for c in columns)
    query = f"select * from {TABLE} where {where}"
    tree = json.loads(con.execute("select json_serialize_sql(?)", [query]).fetchall()[0][0])
    if tree.get("error"):
        raise FilterRejected(f"not a valid filter expression: {tree.get('error_message')}")
    statements = tree.get("statements", [])
    if len(statements) != 1:
        raise FilterRejected("a filter is one expression, not several statements")
    node = statements[0]["node"]
    if node.get("type") != "SELECT_NODE":
        raise FilterRejected("a filter cannot combine queries (UNION, EXCEPT, ...)")
    source = node.get("from_table") or {}
    extra = (
        node.get("modifiers")
        or (node.get("cte_map") or {}).get("map")
        or node.get("group_expressions")
        or node.get("having")
        or node.get("qualify")
        or node.get("sample")
        or len(node.get("select_list", [])) != 1
        or source.get("type") != "BASE_TABLE"
        or source.get("table_name") != TABLE
        or source.get("schema_name")
        or source.get("catalog_name")
        or source.get("at_clause")
        or source.get("sample")
        or statements[0].get("named_param_map")
    )
    if extra:
        raise FilterRejected(
            "a filter is a boolean expression only (no ORDER BY, LIMIT, GROUP BY, other "
            "tables or clauses)"
        )
    clause = node.get("where_clause")
    if clause is None:
        raise FilterRejected("empty filter")
    _walk(clause, known, "filter")
    # Regenerate the SQL from the checked tree: what runs is exactly what was checked.
    only_where = {
        "error": False,
        "statements": [
            {
                "node": {
                    **node,
                    "select_list": [
                        {
                            "class": "STAR",
                            "type": "STAR",
                            "alias": "",
                            "query_location": 0,
                            "query_location_length": 0,
                            "relation_name": "",
                            "exclude_list": [],
                            "replace_list": [],
                            "columns": False,
                            "expr": None,
                            "qualified_exclude_list": [],
                            "rename_list": [],
                        }
                    ],
                },
                "named_param_map": [],
            }
        ],
    }
    sql = con.execute("select json_deserialize_sql(?)", [json.dumps(only_where)]).fetchall()[0][0]
    prefix = f"SELECT * FROM {TABLE} WHERE "
    if not sql.upper().startswith(prefix.upper()):
        raise FilterRejected("filter could not be re-generated safely")
    return sql[len(prefix) :]
