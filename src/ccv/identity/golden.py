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

Ties are always broken the same way — recency, then source priority, then record key — so the
golden record is deterministic. The result, `customer_attributes`, is also the provenance: for
every golden value it names the source record it came from and how many records support it.
`sql/core/customers.sql` pivots it into one row per customer.
"""

from __future__ import annotations

import duckdb

from ccv.config import DEFAULT_SURVIVORSHIP, SurvivorshipConfig

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


def golden_sql(survivorship: SurvivorshipConfig) -> str:
    """The select that builds `customer_attributes` under the given rules."""
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
    return f"""
    with identity_records as (
        select * from identity_records
    ),

    stg_customers as (
        select * from stg_customers
    ),

    records as (
        select
            ir.customer_id,
            ir.source,
            ir.source_record_id,
            ir.record_kind,
            ir.observed_at,
            ir.transactions,
            {source_rank} as source_rank,
            coalesce(c.is_deleted, false) as is_deleted,
            -- provenance order: most recent, most trusted source, smallest record key
            row_number() over (
                order by ir.observed_at desc nulls last, source_rank, ir.source,
                    ir.source_record_id
            ) as record_order,
            {columns}
        from identity_records as ir
        left join stg_customers as c
            on ir.record_kind = 'customer'
            and c.source = ir.source
            and c.source_record_id = ir.source_record_id
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

    -- one row per distinct value: how many records support it and its best provenance (the
    -- first record in `record_order`: both arg_mins pick the same record)
    scored as (
        select
            customer_id,
            attribute,
            value,
            sum(transactions) as supporting_records,
            bool_or(record_kind <> 'customer') as is_verified,
            max(observed_at) as observed_at,
            min(source_rank) as source_rank,
            arg_min(source, record_order) as source,
            arg_min(source_record_id, record_order) as source_record_id
        from live_candidates
        group by customer_id, attribute, value
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


def build_golden(con: duckdb.DuckDBPyConnection, survivorship: SurvivorshipConfig) -> None:
    """(Re)build `customer_attributes` from the crosswalk and the staged records."""
    con.execute(f"create or replace table customer_attributes as {golden_sql(survivorship)}")
