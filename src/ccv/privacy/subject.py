"""Find everything that identifies one person in a warehouse: ids, records, contact points.

Shared by erasure and subject access, so both act on exactly the same person. A request names
an email, a phone or a customer_id; the person is the customer holding it (golden record or
any source record) — several only when allowed, see `find_subject` — with the customer ids
merged into them, all their source records (`customer_xref`), and the emails, phones and
loyalty ids those records carry that no other customer holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from ccv.identity.standardize import normalize_phone
from ccv.privacy.hashing import normalize_email_for_hash


@dataclass
class Subject:
    """The identifiers of one data subject inside a warehouse."""

    customer_ids: set[str] = field(default_factory=set)
    records: set[tuple[str, str, str]] = field(default_factory=set)  # source, id, kind
    emails: set[str] = field(default_factory=set)  # trimmed, lower-case
    phones: set[str] = field(default_factory=set)  # E.164
    loyalty_ids: set[str] = field(default_factory=set)
    raw_strings: set[str] = field(default_factory=set)  # raw spellings seen in raw tables
    shared: int = 0  # contact points also held by other customers (left out of the above)

    def keys(self, kind: str | None = None) -> set[str]:
        """`source:source_record_id` of the records (of one kind)."""
        return {f"{s}:{r}" for s, r, k in self.records if kind is None or k == kind}

    def phone_tails(self) -> set[str]:
        """Last 10 digits of each phone: matches national and international spellings."""
        return {p.lstrip("+")[-10:] for p in self.phones if len(p.lstrip("+")) >= 10}

    def needles(self) -> set[str]:
        """Lower-case strings specific enough to sweep free text for (no names: not unique)."""
        values = self.emails | self.phones | self.customer_ids | self.raw_strings
        values |= {v for v in self.loyalty_ids if len(v) >= 6}
        return {v.lower() for v in values if v and len(v) >= 6}


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Base tables of the main database: table -> {column: type}."""
    rows = con.execute(
        """
        select table_name, column_name, data_type
        from duckdb_columns()
        where database_name = current_database() and schema_name = 'main'
          and table_name in (
              select table_name from duckdb_tables()
              where database_name = current_database() and schema_name = 'main'
          )
        order by table_name, column_index
        """
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for table, column, type_ in rows:
        out.setdefault(table, {})[column] = type_
    return out


def _values(con, sql: str, params: list) -> list:
    return [r[0] for r in con.execute(sql, params).fetchall()]


class AmbiguousSubject(ValueError):
    """The identifier leads to several customers: name one by customer_id (or allow all)."""


def _holders(con, tables, emails: list[str], phones: list[str], loyalty: list[str]) -> list:
    """(customer_id, kind, value) for every customer holding one of the contact points."""
    out: list = []
    if "customers" in tables:
        out += con.execute(
            """
            select customer_id, 'email', lower(trim(email)) from customers
            where lower(trim(email)) in (select unnest(?::varchar[]))
            union all
            select customer_id, 'phone', phone from customers
            where phone in (select unnest(?::varchar[]))
            union all
            select customer_id, 'loyalty_id', loyalty_id from customers
            where loyalty_id in (select unnest(?::varchar[]))
            """,
            [emails, phones, loyalty],
        ).fetchall()
    if "identity_records" in tables and "customer_xref" in tables:
        out += con.execute(
            """
            with linked as (
                select x.customer_id, lower(trim(r.email)) as email, r.phone, r.loyalty_id
                from identity_records as r
                inner join customer_xref as x
                    on x.source = r.source and x.source_record_id = r.source_record_id
                    and x.record_kind = r.record_kind
            )
            select customer_id, 'email', email from linked
            where email in (select unnest(?::varchar[]))
            union all
            select customer_id, 'phone', phone from linked
            where phone in (select unnest(?::varchar[]))
            union all
            select customer_id, 'loyalty_id', loyalty_id from linked
            where loyalty_id in (select unnest(?::varchar[]))
            """,
            [emails, phones, loyalty],
        ).fetchall()
    return out


def find_subject(
    con: duckdb.DuckDBPyConnection,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    default_region: str = "GB",
    all_matches: bool = False,
) -> Subject:
    """Resolve a request's identifier to the person's customer ids, records and contacts.

    One hop only: the customers holding the given email / phone (golden record or any source
    record), never customers reached through *their* other contact points — a landline shared
    by a family must not erase the family. When the identifier leads to several customers,
    `AmbiguousSubject` is raised unless `all_matches` (the same person split by resolution, or
    people sharing a contact point: the operator decides, by customer_id if need be).

    Contact points that another customer also holds are left out of the subject (they are not
    used to find rows, sweep text or suppress future loads); the person's own records carrying
    them are still removed by record key.
    """
    given = [v for v in (email, phone, customer_id) if v]
    if len(given) != 1:
        raise ValueError("name the person by exactly one of email, phone or customer_id")
    tables = _tables(con)
    has = tables.__contains__
    subject = Subject()
    emails: list[str] = []
    phones: list[str] = []
    if email:
        value = normalize_email_for_hash(email)
        emails = [value] if value else []
    if phone:
        e164 = normalize_phone(pd.Series([phone], dtype=object), default_region, placeholders=None)
        phones = [e164.iloc[0]] if isinstance(e164.iloc[0], str) else []
        subject.raw_strings.add(phone.strip())
    if customer_id:
        subject.customer_ids.add(customer_id)
    else:
        found = {row[0] for row in _holders(con, tables, emails, phones, [])}
        if len(found) > 1 and not all_matches:
            raise AmbiguousSubject(
                f"{len(found)} customers hold this {'email' if email else 'phone'}: "
                "erase them one at a time by customer_id, or allow all matches"
            )
        subject.customer_ids |= found
    subject.emails |= set(emails)
    subject.phones |= set(phones)
    if has("customer_ids") and subject.customer_ids:
        subject.customer_ids |= set(  # ids retired by merging into the person's id
            _values(
                con,
                "select customer_id from customer_ids where merged_into in "
                "(select unnest(?::varchar[]))",
                [sorted(subject.customer_ids)],
            )
        )
    ids = sorted(subject.customer_ids)
    if has("customer_xref"):
        subject.records |= set(
            con.execute(
                "select source, source_record_id, record_kind from customer_xref "
                "where customer_id in (select unnest(?::varchar[]))",
                [ids],
            ).fetchall()
        )
    keys = sorted(subject.keys())
    found_contacts: list[tuple] = []
    if has("identity_records"):
        found_contacts += con.execute(
            "select email, phone, loyalty_id from identity_records "
            "where source || ':' || source_record_id in (select unnest(?::varchar[]))",
            [keys],
        ).fetchall()
    if has("customers"):
        found_contacts += con.execute(
            "select email, phone, loyalty_id from customers "
            "where customer_id in (select unnest(?::varchar[]))",
            [ids],
        ).fetchall()
    for e, p, loyalty in found_contacts:
        if e:
            subject.emails.add(e.strip().lower())
        if p:
            subject.phones.add(p)
        if loyalty:
            subject.loyalty_ids.add(loyalty.strip())

    # Raw spellings of the person's phones and loyalty ids (e.g. "07911 123456"), to sweep
    # free-text columns such as quarantine.raw_record where only the raw text survives.
    raw_phones: set[str] = set()
    for table in ("raw_customers", "stg_customers"):
        columns = [c for c in ("phone", "loyalty_id") if c in tables.get(table, {})]
        if not columns or not {"source", "source_record_id"} <= set(tables[table]):
            continue
        rows = con.execute(
            f"select {', '.join(columns)} from {table} "
            "where source || ':' || source_record_id in (select unnest(?::varchar[]))",
            [keys],
        ).fetchall()
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                if not value:
                    continue
                if column == "phone":
                    raw_phones.add(value.strip())
                else:
                    subject.loyalty_ids.add(value.strip())

    # Keep only contact points no other customer holds.
    shared = {
        (kind, value)
        for holder, kind, value in _holders(
            con,
            tables,
            sorted(subject.emails),
            sorted(subject.phones),
            sorted(subject.loyalty_ids),
        )
        if holder not in subject.customer_ids
    }
    subject.shared = len(shared)
    subject.emails -= {v for k, v in shared if k == "email"}
    subject.phones -= {v for k, v in shared if k == "phone"}
    subject.loyalty_ids -= {v for k, v in shared if k == "loyalty_id"}
    if raw_phones:
        spelled = sorted(raw_phones)
        e164 = normalize_phone(pd.Series(spelled, dtype=object), default_region, placeholders=None)
        subject.raw_strings |= {
            raw for raw, value in zip(spelled, e164, strict=True) if value in subject.phones
        }
    if phone and phones and phones[0] not in subject.phones:
        subject.raw_strings.discard(phone.strip())
    return subject
