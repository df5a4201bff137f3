"""Term frequencies frozen with the match parameters they were measured beside.

A comparison with a ``tf_column`` adjusts its exact level by how common the agreed value is
(`scoring.score`): its share of the customer records that have one. Measured afresh every
night, every new record moves every share a little, and with them the weight of every pair
that agrees on such a field: a night that adds one per cent of the records would re-weigh
all pairs, a link far from any new record could cross a threshold or change its rank in
clustering, and no customer could be kept as it was without clustering everything again.

So, as with Splink's precomputed term-frequency tables, the frequencies are part of the model:
counted on the night that estimates m and u, stored beside them (``match_tf``) and reused for
as long as they are (`incremental.term_counts`). A value the estimate did not see counts as
held by one record: as rare as the rarest value then. Only values held by two records or more
are stored (all a lookup needs; it leaves out most e-mail addresses and phones), and only as
DuckDB's 64-bit ``hash`` of their text: the table holds counts, not names, e-mails or phones.

Nights that estimate count tonight's records (and store the counts); nights on shipped
parameters (too few records for EM) score without term frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity.blocking import RecordKeys
from ccv.identity.comparisons import DEFAULT_COMPARISONS, Comparison

DDL = (
    "create table if not exists match_tf (params_run_id varchar, comparison varchar, "
    "value_hash ubigint, records bigint)"
)
"""Per comparison: one row per value held by two records or more (its ``hash``), and one row
with a NULL hash whose ``records`` is the number of records that had any value."""


def tf_comparisons(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons that are TF-adjusted: a ``tf_column`` and an exact level."""
    return [c for c in comparisons if c.tf_column is not None and c.exact_level() is not None]


def _text(uniques: pa.Array | np.ndarray) -> pa.Array:
    """Distinct values (`RecordKeys.codes`) as text, the same way every night."""
    array = uniques if isinstance(uniques, pa.Array) else pa.array(uniques)
    return array if array.type == pa.string() else pc.cast(array, pa.string())


def save_counts(
    con: duckdb.DuckDBPyConnection,
    keys: RecordKeys,
    params_run_id: str,
    comparisons: Sequence[Comparison] = DEFAULT_COMPARISONS,
) -> None:
    """Count the values of the records of `keys` and store the counts (replacing any) as
    those of the parameters estimated by run `params_run_id`."""
    con.execute(DDL)
    con.execute("delete from match_tf")
    for comparison in tf_comparisons(comparisons):
        codes, uniques = keys.codes(comparison.tf_column)
        keyed = codes >= 0
        counts = np.bincount(codes[keyed], minlength=len(uniques))
        common = np.flatnonzero(counts >= 2)
        table = pa.table(
            {
                "value": pa.concat_arrays(
                    [pa.nulls(1, pa.string()), _text(uniques).take(pa.array(common))]
                ),
                "records": np.concatenate([[int(keyed.sum())], counts[common]]).astype(np.int64),
            }
        )
        con.register("_tf_counts", table)
        try:
            con.execute(
                "insert into match_tf select $run, $name, "
                "case when value is not null then hash(value) end, records from _tf_counts",
                {"run": params_run_id, "name": comparison.name},
            )
        finally:
            con.unregister("_tf_counts")


@dataclass(frozen=True)
class FrozenCounts:
    """The stored counts of one estimate, looked up by value (`frequencies`)."""

    con: duckdb.DuckDBPyConnection
    params_run_id: str
    _looked_up: dict = field(default_factory=dict, compare=False, repr=False)
    """frequencies already looked up, by comparison and distinct-values array: a night
    scores its pairs in parts (`incremental.NightLinks`) over the same distinct values"""

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, params_run_id: str) -> FrozenCounts | None:
        """The counts stored with the parameters estimated by `params_run_id`, or None (none
        stored, or stored for other parameters: counted again)."""
        con.execute(DDL)
        ((stored,),) = con.execute(
            "select count(*) from match_tf where params_run_id = ?", [params_run_id]
        ).fetchall()
        return cls(con, params_run_id) if stored else None

    def frequencies(self, name: str, uniques: pa.Array | np.ndarray) -> np.ndarray:
        """The frozen relative frequency of each of `uniques` (distinct values of tonight's
        records) under comparison `name`; a value not stored counts as held once."""
        key = (name, id(uniques))
        if key not in self._looked_up:
            self._looked_up[key] = (uniques, self._frequencies(name, uniques))
        return self._looked_up[key][1]

    def _frequencies(self, name: str, uniques: pa.Array | np.ndarray) -> np.ndarray:
        values = pa.table(
            {"value": _text(uniques), "position": np.arange(len(uniques), dtype=np.int64)}
        )
        self.con.register("_tf_values", values)
        try:
            held = self.con.execute(
                """
                with counts as (
                    select value_hash, records from match_tf
                    where params_run_id = $run and comparison = $name
                )
                select coalesce(c.records, 1)::double as held
                from _tf_values v left join counts c on c.value_hash = hash(v.value)
                order by v.position
                """,
                {"run": self.params_run_id, "name": name},
            ).fetchnumpy()["held"]
            ((total,),) = self.con.execute(
                "select records from match_tf where params_run_id = ? and comparison = ? "
                "and value_hash is null",
                [self.params_run_id, name],
            ).fetchall()
        finally:
            self.con.unregister("_tf_values")
        return held / max(int(total), 1)
