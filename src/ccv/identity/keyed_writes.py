"""Write `identity_records`, `customer_xref` and `match_evidence` by key on a delta night.

Why: a night that adds one percent of the records moves few customers, yet rewriting the
three tables in full wrote ~3.7M identity records, ~11M crosswalk rows and ~5.7M links a night
at a million customers (~15 s with their compression, and the crosswalk's order log compared
all order records with last night's). Last night's row of every record is found anyway, by the
key join that finds each record's last customer (`store.last_records`); the same join flags the
rows that changed, and only those are deleted and inserted again. Each row's ``run_id`` is the
run that last wrote it.

Which rows a night rewrites:

* ``identity_records``: records that are new, were standardised again (a raw field changed,
  or the birth-date blanking did), whose customer, match rule, transaction count or
  observation times changed; rows of records gone tonight are deleted.
* ``customer_xref``: CRM records whose customer or match rule changed, new ones and gone ones;
  orders whose identity record's customer or rule changed or that staging changed tonight
  (the `stg_orders` change log, see `models.Incremental`); consent events whose identity
  record (a consent file's event) or CRM record (an opt-in flag event) moved, or that staging
  changed tonight (the `stg_consents` change log); survey responses are restaged in full every
  night, so their rows are rewritten whole.
* ``match_evidence``: the links of the records rewritten above, of every record sharing a
  link key with a record standardised or gone tonight (`evidence_scope`), and all
  probabilistic links — or, on a night that re-clusters only the scope of its changes
  (`scoped`), the links of that scope alone.

A night that cannot build on last night's tables (a first night, a full recompute, or orders
restaged in full for the crosswalk) writes them whole; either way they hold the same rows
(`tests/test_incremental.py`, `tests/test_incremental_identity.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.frames import frame_to_arrow, read_arrow
from ccv.identity.incremental import KEY
from ccv.identity.store import LastRecords
from ccv.warehouse.models import log_changes, save_state

COMPARED = ("match_rule", "transactions", "observed_at", "first_observed_at")
"""The columns of a record's row that can change while the record itself did not (its customer
aside): compared with last night's by `store.last_records`."""

_KEY = ", ".join(KEY)
_SAME_KEY = " and ".join(f"t.{k} = m.{k}" for k in KEY)


@dataclass(frozen=True)
class RecordChanges:
    """Per record of tonight (bool arrays in the order of the night's frame)."""

    rewritten: np.ndarray
    """its ``identity_records`` row is new or changed"""
    dirty: np.ndarray
    """standardised tonight: new, or its raw fields (or birth-date blanking) changed"""
    moved: np.ndarray
    """its crosswalk rows change: new, or another customer or match rule"""
    customer_moved: np.ndarray
    """new, or another customer"""

    @staticmethod
    def of(last: LastRecords, dirty: np.ndarray, customer_ids: pa.Array) -> RecordChanges:
        """From last night's rows (`store.last_records` with `COMPARED`), the records
        standardised tonight (`dirty`) and tonight's customer ids."""
        code = last.customers.code
        known = code >= 0
        same_customer = np.zeros(len(code), dtype=bool)
        if known.any():
            before = last.customers.ids.take(pa.array(np.where(known, code, 0)))
            equal = pc.fill_null(pc.equal(customer_ids, before), False)
            same_customer = known & equal.to_numpy(zero_copy_only=False)
        same = last.same
        moved = ~(same_customer & same["match_rule"])
        gathered = same["transactions"] & same["observed_at"] & same["first_observed_at"]
        return RecordChanges(
            rewritten=moved | dirty | ~gathered,
            dirty=dirty,
            moved=moved,
            customer_moved=~same_customer,
        )


def evidence_scope(
    con: duckdb.DuckDBPyConnection,
    std: pd.DataFrame,
    changes: RecordChanges,
    link_columns: dict[str, str],
) -> np.ndarray:
    """Per record of tonight: whether its ``match_evidence`` rows may have changed (call before
    `write_identity_records`, whose last-night rows it reads).

    A deterministic link joins the records sharing a key (`link_columns`: standardised
    column -> its ``identity_records`` column) as a star around one centre, so a key's links
    change when its members do: the records of every key that a record standardised tonight
    holds, or held last night, or that a gone record held. Otherwise a link's row changes only
    with its ends (a record rewritten tonight: new, its customer changed, ...): a link between
    two records that both kept their customer is used (inside one customer) as it was. The
    probabilistic links are rewritten whole every night (their weights follow the term
    frequencies of tonight's records; a few per cent of the rows).
    """
    scope = changes.rewritten.copy()
    dirty = np.flatnonzero(changes.dirty)
    with _registered(con, std.iloc[dirty, std.columns.get_indexer(list(KEY))]):
        held = read_arrow(
            con,
            f"""
            select {", ".join(link_columns.values())} from identity_records
            semi join (select {_KEY} from _rows union all select {_KEY} from _gone_records)
                using ({_KEY})
            """,
        )
    for column, stored in link_columns.items():
        keys = set(held[stored].drop_null().to_pylist())
        keys |= set(std[column].iloc[dirty].dropna().tolist())
        scope |= std[column].isin(list(keys)).to_numpy(dtype=bool, na_value=False)
    return scope


def write_identity_records(
    con: duckdb.DuckDBPyConnection,
    rows: Callable[[np.ndarray | None], pd.DataFrame],
    changes: RecordChanges | None,
    run_id: str,
) -> None:
    """``identity_records`` tonight: whole (no `changes`), or by key: last night's rows of
    changed and gone records (``_gone_records``) deleted, the changed ones inserted.

    `rows(positions)` gives the table's columns for those records of the night's frame (None:
    all of them). With `changes`, also leaves the records whose crosswalk rows change in the
    temp table ``_moved_records`` (key and ``customer_moved``) for `write_crosswalk_by_key`.
    """
    if changes is None:
        with _registered(con, rows(None)):
            con.execute(
                "create or replace table identity_records as "
                "select *, $run_id as run_id from _rows",
                {"run_id": run_id},
            )
        return
    rewritten = rows(np.flatnonzero(changes.rewritten))
    with _registered(con, rewritten):
        for old in ("_gone_records", "_rows"):
            con.execute(
                f"delete from identity_records t using (select {_KEY} from {old}) m "
                f"where {_SAME_KEY}"
            )
        con.execute(
            "insert into identity_records by name select *, $run_id as run_id from _rows",
            {"run_id": run_id},
        )
    moved = rewritten[list(KEY)].assign(
        customer_moved=changes.customer_moved[changes.rewritten],
        moved=changes.moved[changes.rewritten],
    )
    with _registered(con, moved):
        con.execute(
            f"create or replace temp table _moved_records as "
            f"select {_KEY}, customer_moved from _rows where moved"
        )


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> Iterator[None]:
    """`frame` readable as ``_rows`` meanwhile."""
    con.register("_rows", frame_to_arrow(frame))
    try:
        yield
    finally:
        con.unregister("_rows")


def restaged_by_key(con: duckdb.DuckDBPyConnection, model: str, run_id: str) -> bool:
    """Whether staging brought `model` up to date by key in this run (so its change log names
    every row it added, changed or removed)."""
    rows = con.execute(
        "select updated from model_state where model = ? and run_id = ?", [model, run_id]
    ).fetchall()
    return rows == [(True,)]


def orders_restaged_by_key(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether staging brought `stg_orders` up to date by key in this run."""
    return restaged_by_key(con, "stg_orders", run_id)


def write_crosswalk_by_key(
    con: duckdb.DuckDBPyConnection, run_id: str, parts: dict[str, str], orders: str
) -> None:
    """Bring ``customer_xref`` up to date by key (see the module docstring); needs
    `write_identity_records` by key and `orders_restaged_by_key`. Leaves the rewritten orders
    in the temp table ``_moved_orders`` for `log_order_moves`.

    `parts`: per record kind, the select of its crosswalk rows (source, source_record_id,
    customer_id, match_rule); `orders`: the staged orders' source, source_record_id,
    order_key and record_key.
    """
    # the orders of moved records and those staging added or changed tonight, in one pass
    # over the staged orders; those it removed are only in its change log (as order_key =
    # source || ':' || order_id; source names hold no ':')
    con.execute(
        f"""
        create or replace temp table _moved_orders as
        select t.source, t.source_record_id, t.order_key, t.record_key,
               coalesce(m.customer_moved, false) as customer_moved
        from ({orders}) as t
        left join _moved_records as m
            on m.record_kind = 'order' and m.source = t.source
            and m.source_record_id = t.record_key
        where m.source is not null or t.order_key in (
            select key from model_changes where model = 'stg_orders' and run_id = $run_id)
        """,
        {"run_id": run_id},
    )
    # the consent events whose identity record (a file's event) or CRM record (an opt-in flag
    # event) moved, and those staging added, changed or removed tonight
    consents_keyed = restaged_by_key(con, "stg_consents", run_id)
    con.execute(
        "create or replace temp table _moved_consents (source varchar, source_record_id varchar)"
    )
    if consents_keyed:  # else staging rebuilt them: their rows are rewritten whole (below)
        con.execute(
            """
            insert into _moved_consents
            select t.source, t.consent_id as source_record_id
            from stg_consents as t
            semi join _moved_records as m
                on m.record_kind = 'consent' and m.source = t.source
                and m.source_record_id = t.record_key
            union
            select t.source, t.consent_id
            from stg_consents as t
            semi join _moved_records as m
                on m.record_kind = 'customer' and m.source = t.customer_source
                and m.source_record_id = t.customer_record_id
            union
            select split_part(key, ':', 1), substr(key, length(split_part(key, ':', 1)) + 2)
            from model_changes where model = 'stg_consents' and run_id = $run_id
            """,
            {"run_id": run_id},
        )
    con.execute(
        """
        create or replace temp table _xref_rewritten as
        select 'customer' as record_kind, source, source_record_id
        from _moved_records where record_kind = 'customer'
        union all
        select 'customer', source, source_record_id
        from _gone_records where record_kind = 'customer'
        union all
        select 'order', source, source_record_id from _moved_orders
        union all
        select 'order', split_part(key, ':', 1), substr(key, length(split_part(key, ':', 1)) + 2)
        from model_changes where model = 'stg_orders' and run_id = $run_id
        union all
        select 'consent', source, source_record_id from _moved_consents
        """,
        {"run_id": run_id},
    )
    con.execute(
        "delete from customer_xref x using _xref_rewritten m where x.record_kind = m.record_kind "
        "and x.source = m.source and x.source_record_id = m.source_record_id"
    )
    # survey responses (and consent events when staging rebuilt them) are rewritten whole
    keyed_kinds = ("customer", "order", "consent") if consents_keyed else ("customer", "order")
    restaged = [kind for kind in parts if kind not in keyed_kinds]
    con.execute(
        "delete from customer_xref where record_kind in (select unnest($kinds))",
        {"kinds": restaged},
    )
    # the moved orders already carry their record key: joining them (not every staged order,
    # as the order part of `parts` does) with their identity records is what keeps this cheap
    rows = {
        "customer": f"""
            select * from ({parts["customer"]}) as t
            semi join _moved_records as m
                on m.record_kind = 'customer' and m.source = t.source
                and m.source_record_id = t.source_record_id""",
        "order": """
            select t.source, t.source_record_id, ir.customer_id, ir.match_rule
            from _moved_orders as t
            inner join identity_records as ir
                on ir.record_kind = 'order' and ir.source = t.source
                and ir.source_record_id = t.record_key""",
    }
    if consents_keyed:
        rows["consent"] = f"""
            select * from ({parts["consent"]}) as t
            semi join _moved_consents as m
                on m.source = t.source and m.source_record_id = t.source_record_id"""
    for kind, sql in parts.items():
        con.execute(
            f"""
            insert into customer_xref
            select source, source_record_id, '{kind}', customer_id, match_rule, $run_id
            from ({rows.get(kind, sql)})
            """,
            {"run_id": run_id},
        )
    con.execute("drop table _xref_rewritten")
    con.execute("drop table _moved_consents")


def log_order_moves(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Log the orders whose customer changed tonight (`write_crosswalk_by_key` found them) as
    customer_xref's changes (see `resolve.write_crosswalk`)."""
    log_changes(
        con, "customer_xref", run_id, "select order_key from _moved_orders where customer_moved"
    )
    save_state(con, "customer_xref", "", run_id, updated=True)


def drop_moves(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp tables of a night's record changes."""
    for table in ("_moved_records", "_gone_records", "_moved_orders"):
        con.execute(f"drop table if exists {table}")
