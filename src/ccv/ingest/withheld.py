"""Withheld values: a bad value of a descriptive field costs that value, not the record.

A CRM record whose e-mail is not an address (``ann.gmail.com``) or whose birth date is not a
date (``31/02/1990``) still names a person: their name, phone, loyalty card, opt-ins and
every other field are good. Quarantining the whole record dropped that person from the
customer 360 (about 0.45 % of a CRM export at a million customers); an order or a survey
answer with a bad e-mail lost its revenue or its score. So the failures listed in `WITHHELD`
withhold the value instead: the row loads with that field NULL, and the value, its rule and
the row it came from go to the `withheld_values` table (nothing is lost, and the steward sees
what to fix at the source). A row that also fails any other rule is quarantined whole, as
before, with all its failures.

Which failures withhold and which quarantine is a decision on what the value is for:

- keys, amounts, statuses, channels and the timestamps that order an entity's versions, time
  its opt-in consents or place a transaction in time stay row rules: without them the row
  has no meaning, or a revenue, a consent time or a version order that would be wrong;
- e-mail (customers, orders, surveys) and birth date (customers) only describe or identify
  the person, and identity resolution already copes with a missing one;
- consents keep every rule: a consent event states what one address or number agreed to.

One implementation for every ingest path (the copying path, the DuckDB-executed contract and
the streaming scan): each fills a `_bad` table of ``_row, field, rule, raw_value`` and hands it
to `split_withheld`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import duckdb

from ccv.config import KEY_FIELD, SourceConfig
from ccv.ingest.readers import _sql_str, quote_ident

# kind -> field -> the rules whose failure withholds the field's value (see the module doc)
WITHHELD: dict[str, dict[str, tuple[str, ...]]] = {
    "customers": {
        "email": ("email_syntax",),
        "birth_date": ("parse_date", "date_out_of_range"),
    },
    "orders": {"email": ("email_syntax",)},
    "surveys": {"email": ("email_syntax",)},
}


def _withholds_sql(kind: str) -> str:
    """SQL true for a `_bad` row whose (field, rule) withholds a value of `kind`."""
    pairs = [f"{f}:{r}" for f, rules in WITHHELD.get(kind, {}).items() for r in rules]
    if not pairs:
        return "false"
    return f"field || ':' || rule in ({', '.join(_sql_str(p) for p in pairs)})"


def split_withheld(con: duckdb.DuckDBPyConnection, kind: str) -> list[str]:
    """Move the failures of table `_bad` that only withhold values into temp table `_withheld`;
    return the fields with a withheld value (none: `_withheld` is empty).

    A row moves only when every failure it has withholds: a row with any other failure stays
    in `_bad` whole and is quarantined, its descriptive faults listed with the rest."""
    withholds = _withholds_sql(kind)
    con.execute(
        f"""
        create or replace temp table _withheld as
        select _row, field, rule, raw_value from _bad
        where {withholds} and _row not in (select _row from _bad where not ({withholds}))
        """
    )
    con.execute("delete from _bad where _row in (select _row from _withheld)")
    return [f for (f,) in con.execute("select distinct field from _withheld order by 1").fetchall()]


def record_withheld(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    source: SourceConfig,
    source_file: str,
    now: dt.datetime,
    keys: str,
) -> None:
    """Write `_withheld` to `withheld_values`, with each row's record key from table `keys`
    (``_row`` and the source kind's key column)."""
    key = quote_ident(KEY_FIELD[source.kind])
    con.execute(
        f"""
        insert into withheld_values by name
        select ? as run_id, ? as source, ? as source_file, w._row as row_number, w.field, w.rule,
               w.raw_value,
               w.field || ': ' || w.rule || coalesce(' (value ' || w.raw_value || ')', '')
                   || '; the record loaded without it' as message,
               ? as withheld_at, k.{key} as record_key
        from _withheld w join {keys} k using (_row)
        """,
        [run_id, source.name, source_file, now],
    )


def field_sql(field: str, withheld: Collection[str]) -> str:
    """The select expression of mapped `field` for the raw insert: NULL in rows where its value
    was withheld."""
    column = quote_ident(field)
    if field not in withheld:
        return column
    return (
        f"case when _row in (select _row from _withheld where field = {_sql_str(field)}) "
        f"then null else {column} end as {column}"
    )
