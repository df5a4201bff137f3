"""The golden record: per customer and attribute, one surviving value and where it came from.

Each attribute has a survivorship rule (`[identity.survivorship]`, defaults in
`config.DEFAULT_SURVIVORSHIP`):

- `source_priority`: the value from the most trusted source (`source_priority` list);
- `most_recent`: the value of the most recently observed record;
- `most_frequent`: the value most of the customer's records agree on (a one-off typo loses);
- `longest`: the most complete value (e.g. "Katherine" over "K");
- `verified_first`: a value also seen on an order or survey (evidence it is in use) first.

Values of CRM records deleted from their source (`stg_customers.is_deleted`, from a full snapshot
that no longer holds them) only survive when the customer has no live record with a value for
that attribute: the record stays linked (its orders are still the customer's history), but a
deleted account's old e-mail must not become the address marketing uses.

A name or place written differently ("HALL", "Hall"; "Muller", "Müller": `SPELLED` attributes
differing only in case or accents) is one value: its spellings' records support it together,
and the golden record shows the best-written spelling — mixed case before all capitals or all
lower case, accents kept before accents lost — naming that spelling's record. Why: two records
"ROBINSON" and "Robinson" agree on the surname, and should outvote a newer "Robinsoon"; and
marketing should not greet anyone as "Dear HALL" when a record spells it "Hall".

Ties are always broken the same way — recency, then source priority, then record key — so the
golden record is deterministic. The result, `customer_attributes`, is also the provenance: for
every golden value it names the source record it came from and how many records support it.
`sql/core/customers.sql` pivots it into one row per customer.

A customer's golden rows depend on its own records alone (their `identity_records` rows and, for
CRM records, their `stg_customers` rows). So a night keeps a digest of those inputs per customer
(`golden_inputs`) and, on an incremental night, deletes and recomputes the rows of the customers
whose digest changed (new, changed, merged or vanished customers) only: a 1 % delta night then
recomputes about 1 % of the golden record instead of all of it, with the same result.

The digest also covers what `sql/core/customers.sql` reads of `identity_records` besides the
golden values (per record: customer, source, transactions, first observation), so the changed
customers are logged (`models.log_changes`) as the night's changes of both `customer_attributes`
and `identity_records`: the core `customers` table is then updated for those customers only
(its `-- incremental:` header), instead of pivoting a million customers again.
"""

from __future__ import annotations

import hashlib

import duckdb

from ccv.config import DEFAULT_SURVIVORSHIP, SurvivorshipConfig
from ccv.warehouse.models import log_changes, save_state

# How each rule ranks candidates: lower sorts first.
RULE_KEYS = {
    "source_priority": "source_rank",
    "most_recent": "-coalesce(epoch(observed_at), -1e12)",
    "most_frequent": "-supporting_records",
    "longest": "-length(value)",
    "verified_first": "-is_verified::integer",
}

# Where each attribute's candidates come from: identity_records (standardised, every record kind)
# or stg_customers (CRM-only attributes).
FROM_IDENTITY = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "postcode",
    "loyalty_id",
)

# Attributes whose values count as one when they differ only in case or accents (`golden_sql`).
SPELLED = ("first_name", "last_name", "address_line", "city", "region")

# What `golden_sql` reads of every record besides its attributes; `input_digests_sql` hashes
# the same columns, so the two cannot drift apart.
RECORD_COLUMNS = ("source", "source_record_id", "record_kind", "observed_at", "transactions")

# A record's CRM row: its attributes that identity_records does not carry, and is_deleted.
RECORDS_JOIN = """
        from identity_records as ir
        left join stg_customers as c
            on ir.record_kind = 'customer'
            and c.source = ir.source
            and c.source_record_id = ir.source_record_id"""


def golden_sql(
    survivorship: SurvivorshipConfig,
    customers: str | None = None,
    part: tuple[int, int] | None = None,
) -> str:
    """The select that builds `customer_attributes` under the given rules; with `customers`
    (a table with a ``customer_id`` column), the rows of those customers only; with `part`
    (k, n), those of the k-th of n parts of the customers (by a hash of the id)."""
    priority = ", ".join(f"'{name}'" for name in survivorship.source_priority)
    source_rank = (
        f"coalesce(list_position([{priority}]::varchar[], ir.source), 1000)" if priority else "1000"
    )
    columns = ",\n            ".join(
        f"cast(ir.{a} as varchar) as {a}"
        if a in FROM_IDENTITY
        else f"cast(c.{a} as varchar) as {a}"
        for a in DEFAULT_SURVIVORSHIP
    )
    rule_of = " ".join(f"when '{a}' then '{survivorship.rule(a)}'" for a in DEFAULT_SURVIVORSHIP)
    rule_key = " ".join(
        f"when '{a}' then {RULE_KEYS[survivorship.rule(a)]}" for a in DEFAULT_SURVIVORSHIP
    )
    attributes = ", ".join(DEFAULT_SURVIVORSHIP)
    record_columns = ", ".join(f"ir.{c}" for c in RECORD_COLUMNS)
    only = f"where customer_id in (select customer_id from {customers})" if customers else ""
    spelled = ", ".join(f"'{a}'" for a in SPELLED)
    if part is not None:
        only = f"where hash(customer_id) % {part[1]} = {part[0]}"
    return f"""
    with identity_records as (
        select * from identity_records {only}
    ),

    stg_customers as (
        select * from stg_customers
    ),

    records as (
        select
            ir.customer_id,
            {record_columns},
            {source_rank} as source_rank,
            coalesce(c.is_deleted, false) as is_deleted,
            -- provenance order: most recent, most trusted source, smallest record key; only
            -- compared within a customer, so numbered per customer (a window over all records
            -- sorts millions of rows as one partition: 12 % more time at 1M)
            row_number() over (
                partition by ir.customer_id
                order by ir.observed_at desc nulls last, source_rank, ir.source,
                    ir.source_record_id
            ) as record_order,
            {columns}{RECORDS_JOIN}
    ),

    candidates as (
        unpivot records on {attributes} into name attribute value value
    ),

    -- values of live records first; a deleted record's only when no live record has one (deleted
    -- records are few: only their customers are looked at, not a window over every candidate)
    deleted as (
        select * from candidates where is_deleted
    ),

    live_attributes as (
        select distinct customer_id, attribute from candidates
        where not is_deleted and customer_id in (select customer_id from deleted)
    ),

    live_candidates as (
        select * from candidates where not is_deleted
        union all
        select d.* from deleted as d
        anti join live_attributes as l
            on l.customer_id = d.customer_id and l.attribute = d.attribute
    ),

    -- a name or place written differently ("HALL", "Hall"; "Muller", "Müller") is one value:
    -- its spellings support each other, and the best-written one is shown — mixed case before
    -- all capitals or all lower case, accents kept before accents lost, then provenance order
    spelled as (
        select
            *,
            case when attribute in ({spelled})
                then lower(strip_accents(value)) else value end as value_key,
            (case when attribute in ({spelled})
                then 2 * (value = lower(value) or value = upper(value))::integer
                    + (value = strip_accents(value))::integer
                else 0 end) * 4294967296 + record_order as spelling_order
        from live_candidates
    ),

    -- one row per distinct value: how many records support it, its best-written spelling and
    -- that spelling's record as provenance (all three arg_mins pick the same record)
    scored as (
        select
            customer_id,
            attribute,
            arg_min(value, spelling_order) as value,
            sum(transactions) as supporting_records,
            bool_or(record_kind <> 'customer') as is_verified,
            max(observed_at) as observed_at,
            min(source_rank) as source_rank,
            arg_min(source, spelling_order) as source,
            arg_min(source_record_id, spelling_order) as source_record_id
        from spelled
        group by customer_id, attribute, value_key
    ),

    ranked as (
        select
            *,
            case attribute {rule_of} end as rule,
            row_number() over (
                partition by customer_id, attribute
                order by
                    case attribute {rule_key} end,
                    observed_at desc nulls last,
                    source_rank,
                    source,
                    source_record_id
            ) as rank
        from scored
    ),

    -- distinct values never share their best record, so no tie is left for `rank`
    final as (
        select
            customer_id,
            attribute,
            value,
            rule,
            source,
            source_record_id,
            observed_at,
            supporting_records
        from ranked
        where rank = 1
    )

    select * from final
    """


def input_digests_sql(survivorship: SurvivorshipConfig) -> str:
    """The select of one digest per customer over everything its golden rows are computed from:
    the columns `golden_sql` reads of the customer's records, and the rules (the digest of
    `golden_sql` itself, so a change of rules or of this code changes every customer's)."""
    rules = hashlib.md5(golden_sql(survivorship).encode()).hexdigest()
    crm_only = [a for a in DEFAULT_SURVIVORSHIP if a not in FROM_IDENTITY]
    inputs = ", ".join(
        [
            f"'{rules}'",
            *(f"ir.{c}" for c in RECORD_COLUMNS),
            "ir.first_observed_at",  # read by sql/core/customers.sql (first_seen_at)
            *(f"ir.{a}" for a in FROM_IDENTITY),
            "c.is_deleted",
            *(f"c.{a}" for a in crm_only),
        ]
    )
    return f"""
    with identity_records as (
        select * from identity_records
    ),

    stg_customers as (
        select * from stg_customers
    ),

    records as (
        select ir.customer_id, hash({inputs}) as record_hash{RECORDS_JOIN}
    ),

    final as (
        select customer_id, sum(record_hash::hugeint) as digest
        from records
        group by customer_id
    )

    select * from final
    """


# the tables whose per-customer changes `build_golden` logs (see the module docstring)
LOGGED = ("customer_attributes", "identity_records")


def build_golden(
    con: duckdb.DuckDBPyConnection,
    survivorship: SurvivorshipConfig,
    incremental: bool = False,
    run_id: str | None = None,
) -> None:
    """(Re)build `customer_attributes` from the crosswalk and the staged records.

    `incremental`: recompute only the customers whose inputs changed since the last build (see
    the module docstring) and log them as `run_id`'s changes; a full build otherwise, or when
    there is no last build to start from. Either way `golden_inputs` is left describing
    tonight's table for the next night.
    """
    con.execute(f"create or replace temp table _golden_inputs as {input_digests_sql(survivorship)}")
    tables = set(con.execute("select table_name from duckdb_tables()").fetchnumpy()["table_name"])
    updated = incremental and {"customer_attributes", "golden_inputs"} <= tables
    if updated:
        _rebuild_changed(con, survivorship, run_id)
    else:
        _build_whole(con, survivorship)
    for table in LOGGED:
        save_state(con, table, "", run_id, updated=bool(updated and run_id))
    con.execute("create or replace table golden_inputs as select * from _golden_inputs")
    con.execute("drop table _golden_inputs")


GOLDEN_PART_RECORDS = 1_000_000
"""Identity records per pass of a whole build (`_build_whole`)."""


def _build_whole(con: duckdb.DuckDBPyConnection, survivorship: SurvivorshipConfig) -> None:
    """`customer_attributes` for every customer, a part of the customers at a time.

    Why in parts: a customer's golden rows depend on its own records alone (see the module
    docstring), while one pass over all of them (~3.7M records, ~10M golden rows at a million
    customers) spilled ~0.7 GB to disk under a 4 GB memory limit and took ~22 s; four passes
    of a quarter of the customers each took ~15 s and spilled nothing.
    """
    ((records,),) = con.execute("select count(*) from identity_records").fetchall()
    parts = max(1, -(-records // GOLDEN_PART_RECORDS))
    for k in range(parts):
        select = golden_sql(survivorship, part=(k, parts) if parts > 1 else None)
        if k == 0:
            con.execute(f"create or replace table customer_attributes as {select}")
        else:
            con.execute(f"insert into customer_attributes {select}")


def _rebuild_changed(
    con: duckdb.DuckDBPyConnection, survivorship: SurvivorshipConfig, run_id: str | None
) -> None:
    """Delete and recompute the golden rows of customers whose input digest changed: new ones,
    changed ones, and (deleted only) those that no longer exist; log them as `run_id`'s
    changes of the `LOGGED` tables."""
    con.execute(
        """
        create or replace temp table _golden_changed as
        with tonight as (
            select * from _golden_inputs
        ),

        last_build as (
            select * from golden_inputs
        ),

        final as (
            select customer_id
            from tonight
            full join last_build using (customer_id)
            where tonight.digest is distinct from last_build.digest
        )

        select * from final
        """
    )
    con.execute(
        "delete from customer_attributes "
        "where customer_id in (select customer_id from _golden_changed)"
    )
    con.execute(
        "insert into customer_attributes by name "
        f"{golden_sql(survivorship, customers='_golden_changed')}"
    )
    if run_id:
        for table in LOGGED:
            log_changes(con, table, run_id, "select customer_id from _golden_changed")
    con.execute("drop table _golden_changed")
