"""The records a delta night can change, found in SQL before the night's frame is read.

Why: a 1 % night at a million customers re-clusters ~75k of ~2.5M identity records (`scoped`),
but read every record back from ``identity_std`` into its frame, and passed over all of them
in blocking, clustering, stable ids and the writes: ~15 s of its resolve stage. A night that
builds on last night's clusters (`scoped`: keyed, reused parameters with frozen term
frequencies) needs only a closed part of the record graph in its frame — its *neighbourhood*:

* the records standardised tonight (new, changed, re-blanked): `dirty`;
* every member of a block (rule and key) holding a dirty record's key or a gone record's old
  key — that is what blocking regenerates — unless the block is over its cap: such a block
  yields no pair, and its size (whether it is over the cap) and its first record (the key it
  is reported under, which joins the frame) come from SQL here instead, as do the members of
  a block that grew past the cap tonight (its stored pairs are gone: `refresh_pairs` finds
  them by those members);
* both ends of the stored pairs a night can change (`incremental._stored_pairs_near`);
* the records sharing an e-mail key, phone or loyalty id with a dirty record, the CRM records
  dirty transactions name, and the transactions naming dirty CRM records (their
  deterministic links change: `scoped.scope`);
* and every record of a last-night component holding any of these, or a gone record;
* besides, the records whose row in ``identity_records`` changes though neither they nor their
  customer do (more transactions of the same identifiers, a later update time: the gathered
  columns of `keyed_writes.COMPARED`), so that the keyed writes see them.

So every block a night regenerates lies in the frame whole, every link of a frame record has
both ends in it (a link of two unchanged records is last night's, inside one component; any
other is a pair of a regenerated block or a stored pair read above), and every record
`scoped.scope` can seed lies in it with its whole component. Clustering, stable ids and the
keyed writes therefore run on it as they run on all records (`tests/test_scoped_clustering.py`
compares seven scenarios of nights with nights that read and cluster everything); records
outside it keep last night's customer, rows and links. A stored pair with one end outside
(a candidate below the threshold: no link) is left out when the pairs around the scope are
read (`incremental.StoredPairs`).

Population statistics stay whole: default birth dates are counted over all records in SQL
(`incremental.refresh_records`), term frequencies are the frozen ones, and the parameters'
growth check and the night's counts take all records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ccv.identity.blocking import BlockingRule
from ccv.identity.frames import frame_to_arrow, read_frame

LINK_COLUMNS = ("std_email_key", "std_phone", "std_loyalty_id")
OVERSIZED_DDL = (
    "create table if not exists oversized_keys (rule varchar, key_hash bigint, key varchar, "
    "size bigint)"
)
"""the blocks over their cap at the last night, by rule and key hash (`incremental`)"""
GATHERED = ("transactions", "observed_at", "first_observed_at")
"""the gathered columns of a record's row in identity_records (`keyed_writes.COMPARED`)"""
KEY = ("record_kind", "source", "source_record_id")


@dataclass(frozen=True)
class Neighbourhood:
    """The stored records a neighbourhood night reads, and what blocking needs of the blocks
    it cannot see whole."""

    record_nos: np.ndarray
    """``record_no`` of the stored records (in ``identity_std``) of the neighbourhood"""
    oversized: dict[int, pd.DataFrame]
    """per rule (bit): the hit keys whose block is over the rule's cap (``key``, ``size``:
    every record of tonight holding it)"""
    oversized_members: dict[int, np.ndarray]
    """per rule (bit): ``record_no`` of the members of those blocks that were not over the cap
    last night (``oversized_keys``): only they can hold stored pairs of the rule"""


def find(
    con: duckdb.DuckDBPyConnection,
    dirty: pd.DataFrame,
    stale: pd.DataFrame,
    rules: Sequence[BlockingRule],
    columns: Sequence[str],
    max_block_size: int,
) -> Neighbourhood:
    """The neighbourhood of tonight's `dirty` records (``record_no``, the key, the link keys,
    ``ref_record_id`` and the block key hash `columns` of `rules`, as tonight has them) and of
    the `stale` ones (``record_no`` and their old hashes), among the stored records of
    ``identity_std`` (after the stale ones were deleted) and ``_gathered``.
    """
    tables = {
        "_nb_dirty": frame_to_arrow(
            dirty[["record_no", *KEY, *LINK_COLUMNS, "ref_record_id", *columns]]
        ),
        "_nb_stale": frame_to_arrow(stale[["record_no", *columns]]),
    }
    for name, table in tables.items():
        con.register(name, table)
    try:
        seeds = ["select record_no from _nb_dirty", "select record_no from _nb_stale"]
        oversized, members, firsts = {}, {}, []
        con.execute(OVERSIZED_DDL)
        con.execute("create or replace temp table _nb_near (bit integer, record_no bigint)")
        for bit, (rule, column) in enumerate(zip(rules, columns, strict=True)):
            cap = rule.cap(max_block_size)
            over = f"size > {int(cap)}" if np.isfinite(cap) else "false"
            con.execute(
                f"""
                create or replace temp table _nb_block as
                with hit as (
                    select {column} as key from _nb_dirty
                    where record_kind = 'customer' and {column} is not null
                    union
                    select {column} from _nb_stale where {column} is not null
                ),

                holders as (
                    select s.record_no, s.{column} as key, s.source, s.source_record_id
                    from identity_std as s
                    semi join hit on hit.key = s.{column}
                    where s.record_kind = 'customer'
                        and s.record_no not in (select record_no from _nb_dirty)
                    union all
                    select d.record_no, d.{column}, d.source, d.source_record_id
                    from _nb_dirty as d
                    semi join hit on hit.key = d.{column}
                    where d.record_kind = 'customer'
                )

                select *, count(*) over (partition by key) as size from holders
                """
            )
            blocks = read_frame(
                con,
                f"""
                select key, any_value(size) as size,
                       arg_min(record_no, (source, source_record_id)) as first_no
                from _nb_block where {over} group by key
                """,
            )
            oversized[bit] = blocks[["key", "size"]].astype("int64")
            firsts.append(blocks["first_no"].to_numpy(dtype=np.int64))
            # a block over its cap yields no pair, so only one that grew past it tonight (not
            # an oversized key last night) has stored pairs to lose: its members are near
            grown = f"""
                {over} and key not in (
                    select key_hash from oversized_keys where rule = '{rule.name}')
                """
            members[bit] = np.asarray(
                con.execute(f"select record_no from _nb_block where {grown}").fetchnumpy()[
                    "record_no"
                ],
                dtype=np.int64,
            )
            con.execute(
                f"insert into _nb_near select {bit}, record_no from _nb_block "
                f"where not ({over}) or ({grown})"
            )
            seeds.append(f"select record_no from _nb_block_{bit}")
            con.execute(
                f"create or replace temp table _nb_block_{bit} as "
                f"select record_no from _nb_block where not ({over})"
            )
        con.register(
            "_nb_firsts", pa.table({"record_no": np.concatenate([np.zeros(0, np.int64), *firsts])})
        )
        seeds.append("select record_no::bigint from _nb_firsts")
        # both ends of the stored pairs a night can change (as `_stored_pairs_near` finds them)
        con.execute(
            """
            create or replace temp table _nb_pairs as
            select p.left_no, p.right_no from match_pairs p
            semi join _nb_near n on n.record_no = p.left_no and (p.rules >> n.bit) & 1 = 1
            union
            select p.left_no, p.right_no from match_pairs p
            semi join _nb_stale s on s.record_no = p.left_no
            """
        )
        seeds += ["select left_no from _nb_pairs", "select right_no from _nb_pairs"]
        # deterministic links: shared link keys, and references either way
        for column in LINK_COLUMNS:
            seeds.append(
                f"""
                select s.record_no from identity_std as s
                semi join (select {column} as v from _nb_dirty where {column} is not null) as d
                    on d.v = s.{column}
                """
            )
        seeds.append(
            """
            select s.record_no from identity_std as s
            semi join (select ref_record_id as v from _nb_dirty
                       where ref_record_id is not null) as d
                on d.v = s.source_record_id
            where s.record_kind = 'customer'
            """
        )
        join = " and ".join(f"s.{k} = g.{k}" for k in KEY)
        seeds.append(
            f"""
            select s.record_no from _gathered as g
            join identity_std as s on {join}
            semi join (select source_record_id as v from _nb_dirty
                       where record_kind = 'customer') as d
                on d.v = g.ref_record_id
            """
        )
        con.execute(
            "create or replace temp table _nb_seeds as "
            + " union ".join(f"({sql})" for sql in seeds)
        )
        # and, without their components, the records whose row changes while neither they nor
        # their customer do: new transactions of the same identifiers, a later update time
        ir_join = " and ".join(f"ir.{k} = g.{k}" for k in KEY)
        changed = " or ".join(f"g.{c} is distinct from ir.{c}" for c in GATHERED)
        con.execute(
            f"""
            create or replace temp table _nb_rows as
            with changed as (
                select g.* from _gathered as g
                join identity_records as ir on {ir_join}
                where {changed}
            )

            select s.record_no from changed as g
            join identity_std as s on {join}
            """
        )
        record_nos = con.execute(
            """
            with components as (
                select distinct c.component from identity_clusters as c
                semi join _nb_seeds as s on s.record_no = c.record_no
            ),

            reached as (
                select c.record_no from identity_clusters as c
                semi join components as k on k.component = c.component
                union
                select record_no from _nb_seeds
            )

            select s.record_no from identity_std as s
            semi join (select record_no from reached union select record_no from _nb_rows) as r
                on r.record_no = s.record_no
            order by s.record_no
            """
        ).fetchnumpy()["record_no"]
        return Neighbourhood(np.asarray(record_nos, dtype=np.int64), oversized, members)
    finally:
        for name in [*tables, "_nb_firsts"]:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
        for name in ["_nb_block", "_nb_near", "_nb_pairs", "_nb_seeds", "_nb_rows"] + [
            f"_nb_block_{bit}" for bit in range(len(rules))
        ]:
            con.execute(f"drop table if exists {name}")
