"""Incremental identity resolution: redo only the work that a night's new or changed records need.

Why: standardising, blocking and comparing a million customer records every night costs minutes,
while a typical night changes one percent of them. This state persists in the warehouse from run
to run, so a night touches only its delta and still ends exactly where a full rebuild of the same
inputs ends (given the same match parameters, see `choose_params`):

* ``identity_std``: every identity record's standardised columns, keyed by the record and a
  *fingerprint* (a 64-bit hash of the raw identity fields). A record whose fingerprint is
  unchanged is not standardised again; a new or changed one is, and a record that disappeared
  (a replaced snapshot, an erased person) is dropped. Birth dates are stored before
  `blank_default_dates`,
  which is a population statistic and is re-applied to all records every night; a record whose
  date became (or stopped being) a system default counts as changed. Each record also keeps a
  64-bit hash of its key under every blocking rule (``bk_<rule>``): the persisted blocking index.
* ``match_pairs``: every candidate pair of customer records (by stable ``record_no``) with the
  blocking rules that found it (bit mask) and its comparison levels.
* ``oversized_keys``: the blocks too large to expand, by rule and key hash, for
  ``oversized_blocks``.
* ``match_params``: the last estimated m/u/λ (`choose_params` says when they are re-estimated),
  and ``match_tf``: the term counts measured beside them (`term_counts`).

The state is stamped (`state_signature`, kept in ``identity_runs``) with the code and settings it
was computed with; when they differ, or rows went missing (an erasure), a night starts afresh.

A night's candidate pairs: for each rule, the blocks that a new, changed or vanished record
belongs (or belonged) to are *affected*; only they are expanded again, whole, with the same
``max_block_size`` test on their full current size as in a full run (so a block growing past the
cap stops contributing pairs, and one shrinking under it starts). Stored pairs lose that rule's
bit when their block is affected and keep it otherwise; pairs with no rule left are dropped.
Comparison levels depend on the two records only, so stored levels are reused and only pairs that
involve a new or changed record (or that were never candidates before) are compared. Term
frequencies are part of the model: counted when m/u are estimated and frozen with them
(`term_counts`), so while parameters are reused a pair of unchanged records weighs what it
weighed last night. Only the stored pairs a night can change are read back (`refresh_pairs`);
the others stay in ``match_pairs`` and are read, and scored, on demand (`PairState`,
`NightLinks`): all of them, or on a night that re-clusters only the scope of its changes
(`scoped`), the new and changed ones and those around the scope. Such a night also reads only
the neighbourhood of its changes from ``identity_std`` into its frame (`neighbourhood`), not
every record.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.identity import neighbourhood
from ccv.identity.arrays import lex_order, unique_sorted
from ccv.identity.blocking import (
    DEFAULT_RULES,
    BlockingRule,
    RecordKeys,
    block_keys,
    or_by_key,
    pairs_for_rule,
    rule_names,
)
from ccv.identity.comparisons import DEFAULT_COMPARISONS
from ccv.identity.frames import (
    arrow_to_frame,
    frame_to_arrow,
    read_arrow,
    read_arrow_by_range,
    read_frame,
    write_table,
)
from ccv.identity.matching import DEFAULT_PARAMS_PATH, EMPTY, MatchResult, links_from_levels
from ccv.identity.neighbourhood import Neighbourhood
from ccv.identity.partitions import LOCAL, Mapper, compare_pairs, term_frequencies
from ccv.identity.scoring import Params, estimate_m, estimate_u
from ccv.identity.standardize import STD_COLUMNS, parse_date
from ccv.identity.term_counts import FrozenCounts, save_counts
from ccv.identity.threads import Submit

RAW_FIELDS = (
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "loyalty_id",
    "birth_date",
    "postcode",
    "city",
    "country",
    "phone_region",
)
"""The raw fields standardisation reads: a change in any of them makes a record "changed"."""

LEVEL_COLUMNS = tuple(f"{c.name}_level" for c in DEFAULT_COMPARISONS)
KEY = ("record_kind", "source", "source_record_id")


def fingerprint_sql(alias: str) -> str:
    """SQL fingerprint of a gathered record's raw identity fields (NULL and '' stay distinct):
    DuckDB's 64-bit ``hash`` of the fields together.

    Why not an md5 (the 32 hex characters, or 64 bits of them): a fingerprint is only ever
    compared with the same record's last one, so 64 bits leave a change unseen with odds of
    about 2^-64 per changed record, while millions of records are fingerprinted every night
    and ``hash`` costs a fifth of ``md5`` (0.3 s against 1.8 s for 3.7M records here). Should
    a DuckDB upgrade change ``hash``, every record looks changed once: the night standardises
    them all again, as after a change of ccv's identity code."""
    fields = ", ".join(f"{alias}.{f}" for f in ("record_kind", *RAW_FIELDS))
    return f"hash({fields})"


def rule_column(rule: BlockingRule) -> str:
    return f"bk_{rule.name}"


# --------------------------------------------------------------------------------------------
# persisted standardised records


@dataclass(frozen=True)
class RecordState:
    """The night's standardised records and what changed since the last night.

    ``std``: every identity record in the order of a full run (kind, source, record id), with
    ``record_no`` (stable across nights while the record is unchanged) and the ``bk_*`` block
    key hashes. ``dirty``: per row of ``std``, new, changed, or its birth-date blanking changed.
    ``stale``: ``record_no`` and ``bk_*`` of the rows whose old state is gone (removed or
    changed records, and the old keys of re-blanked ones).
    """

    std: pd.DataFrame
    dirty: np.ndarray
    stale: pd.DataFrame
    standardised: int
    removed: int
    records: int
    """identity records tonight (all of them: ``std`` may hold a neighbourhood)"""
    crm_records: int
    """customer records tonight (all of them)"""
    hood: Neighbourhood | None = None
    """on a neighbourhood night (`neighbourhood`), what the frame's blocking needs of the
    blocks it does not hold whole; ``std`` then holds the neighbourhood's records only"""


@dataclass(frozen=True)
class Around:
    """A night that reads only its neighbourhood (`neighbourhood`): the blocks' cap, and the
    default birth dates of a population's date counts (`resolve.default_birth_dates`)."""

    max_block_size: int
    default_dates: Callable[[np.ndarray, np.ndarray], np.ndarray]


def ensure_state_tables(con: duckdb.DuckDBPyConnection, rules: Sequence[BlockingRule]) -> None:
    keys = ", ".join(f"{rule_column(r)} bigint" for r in rules)
    std = ", ".join(f"{c} {'date' if c == 'std_birth_date' else 'varchar'}" for c in STD_COLUMNS)
    con.execute(
        f"""
        create table if not exists identity_std (
            record_kind varchar, source varchar, source_record_id varchar, fingerprint ubigint,
            record_no bigint, display_first_name varchar, display_last_name varchar, {std},
            birth_blanked boolean, {keys}
        )
        """
    )
    levels = ", ".join(f"{c} tinyint" for c in LEVEL_COLUMNS)
    con.execute(
        f"create table if not exists match_pairs (left_no bigint, right_no bigint, "
        f"rules bigint, {levels})"
    )


def code_digest(modules: Sequence[ModuleType]) -> str:
    """md5 of the source of `modules` (call at import time: the code this process runs); a
    package counts with every module in it (`ccv.identity.standardize`)."""
    digest = hashlib.md5()
    for module in modules:
        path = Path(module.__file__)
        files = sorted(path.parent.glob("*.py")) if hasattr(module, "__path__") else [path]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()


IDENTITY_LIBRARIES = (
    "anyascii",
    "duckdb",
    "jellyfish",
    "nicknames",
    "numpy",
    "pandas",
    "phonenumbers",
    "pyarrow",
    "rapidfuzz",
)
"""The libraries whose results the persisted identity state holds: transliteration, nickname
groups, phonetic codes, phone parsing (whose metadata changes with its releases), string
similarities (comparison levels), and the hashes behind fingerprints, block keys and the
frozen term counts (DuckDB's `hash`, pandas' `hash_array`)."""


def library_versions(names: Sequence[str] = IDENTITY_LIBRARIES) -> str:
    """The installed versions of `names` ("duckdb==2.0.0,..."): part of the state's stamp."""
    return ",".join(f"{name}=={importlib.metadata.version(name)}" for name in names)


def state_signature(settings: object, code: str) -> str:
    """What the persisted state was computed with: settings, `code_digest` of the code, and
    the versions of the `IDENTITY_LIBRARIES`.

    Stored standardised values, block keys and comparison levels are only valid for the code,
    libraries and settings that made them: after an upgrade that changes how a name is folded,
    a phone number parsed or what an e-mail level means, the first night recomputes everything
    instead of mixing both.
    """
    return hashlib.md5(f"{settings!r}|{code}|{library_versions()}".encode()).hexdigest()


def state_is_current(con: duckdb.DuckDBPyConnection, signature: str) -> bool:
    """Whether ``identity_std`` is as the last resolve left it: made with the same code and
    settings (`state_signature`), one row per identity record that run counted. Not so after an
    erasure (`ccv forget` deletes the person's rows, whose blocks could then not be told apart),
    an upgrade, or in a warehouse older than this state: the night then recomputes everything."""
    tables = set(con.execute("select table_name from duckdb_tables()").fetchnumpy()["table_name"])
    if "identity_std" not in tables:
        return True  # no state yet: everything is new anyway
    last = con.execute(
        "select records, state_signature from identity_runs order by run_id desc limit 1"
    ).fetchall()
    count = con.execute("select count(*) from identity_std").fetchall()[0][0]
    return bool(last) and last[0] == (count, signature)


def drop_state(con: duckdb.DuckDBPyConnection) -> None:
    """Forget the persisted state: the next resolve recomputes everything."""
    con.execute("drop table if exists identity_std")
    con.execute("drop table if exists match_pairs")
    con.execute("drop table if exists identity_clusters")  # by record_no: renumbered now


def refresh_records(
    con: duckdb.DuckDBPyConnection,
    gathered_sql: str,
    standardize: Callable[[pd.DataFrame], pd.DataFrame],
    blank_dates: Callable[[pd.Series], pd.Series],
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    write: Submit | None = None,
    around: Around | None = None,
) -> RecordState:
    """Bring ``identity_std`` up to date with the gathered records and return the night's state.

    ``gathered_sql`` selects the identity records (the columns of `resolve.gather_sql`);
    ``standardize`` adds the std_* columns to a frame of them; ``blank_dates`` blanks default
    birth dates given all records' dates.

    Why new records reach ``identity_std`` only at the end: their birth-date blanking and block
    key hashes are known only once every record is standardised, and rewriting millions of rows
    in place (an update) costs as much as writing them; so the night's frame is put together
    from the stored records (read from ``identity_std``) and the fresh ones (kept in Arrow as
    they are standardised), and the fresh ones are written once, complete.

    ``write``: where that final write goes (e.g. `threads.writes_beside`, so the caller goes on
    while DuckDB writes); by default it is done here, on `con`.

    ``around``: read only the neighbourhood of tonight's changes (`neighbourhood`; the caller
    knows the night builds on last night's clusters), with default birth dates counted over
    all records; without it, or when a stored record has no last cluster, every record.
    """
    ensure_state_tables(con, rules)
    # written in key order, so a record's ``rowid`` is its place in key order (a table made
    # from an ordered query keeps that order: DuckDB preserves insertion order), which later
    # reads sort and slice on as ``gathered_no``. Why not `row_number() over (order by …)`: that
    # window sorted every gathered column of ~3.7M records a night; the ordered insert costs
    # half as much.
    con.execute(
        f"""
        create or replace temp table _gathered as
        select g.*, {fingerprint_sql("g")} as fingerprint
        from ({gathered_sql}) as g
        order by g.record_kind, g.source, g.source_record_id
        """
    )
    join = " and ".join(f"s.{k} = g.{k}" for k in KEY)
    bk = [rule_column(r) for r in rules]
    stale = read_frame(
        con,
        f"""
        select s.record_no, {", ".join(f"s.{c}" for c in bk)} from identity_std s
        anti join _gathered g on {join} and s.fingerprint = g.fingerprint
        """,
    )
    if around is not None and _clusters_cover(con):
        # the gone records' keys, for the keyed writes (`store.last_records`)
        _save_gone_keys(con, stale["record_no"].to_numpy(dtype=np.int64))
    else:
        around = None
    con.execute(
        f"""
        delete from identity_std s where not exists (
            select 1 from _gathered g where {join} and s.fingerprint = g.fingerprint)
        """
    )
    # fetchall, not fetchone: an unfinished result would block the connection (DuckDB 2.0)
    ((first_no, total, crm),) = con.execute(
        "select (select coalesce(max(record_no), -1) + 1 from identity_std), count(*), "
        "count(*) filter (where record_kind = 'customer') from _gathered"
    ).fetchall()
    hood = defaults = None
    with _large_text(con):
        fresh, fingerprints = _standardise_fresh(con, standardize, first_no, _night_schema(con))
        if around is not None:
            defaults = _default_dates(con, fresh, around)
            dirty, old_keys = _dirty_records(con, fresh, defaults, rules)
            # a re-blanked record's old keys are stale too (their blocks are regenerated)
            gone = pd.concat([stale, old_keys], ignore_index=True)
            hood = neighbourhood.find(con, dirty, gone, rules, bk, around.max_block_size)
            del dirty, old_keys, gone
        night = _read_night(con, fresh, None if hood is None else hood.record_nos)
    del fresh  # on a first night it is the night itself
    con.execute("drop table _gathered")
    std = arrow_to_frame(night)
    del night
    std["std_birth_date"] = parse_date(std["std_birth_date"])  # the dtype `standardize` gives
    # default birth dates are a population statistic: re-apply to every record tonight
    unblanked = std["std_birth_date"]
    std["std_birth_date"] = (
        blank_dates(unblanked) if defaults is None else _blank(unblanked, defaults)
    )
    blanked = (std["std_birth_date"].isna() & unblanked.notna()).to_numpy()
    was = std["birth_blanked"].astype("boolean").to_numpy(dtype=bool, na_value=False)
    new = std["record_no"].to_numpy() >= first_no
    reblanked = ~new & (was != blanked)
    if reblanked.any():  # their keys and levels changed: old keys are stale, pairs redone
        stale = pd.concat([stale, std.loc[reblanked, ["record_no", *bk]]], ignore_index=True)
    dirty = new | reblanked
    std["birth_blanked"] = blanked
    is_crm = (std["record_kind"] == "customer").to_numpy()
    _put_block_keys(std, np.flatnonzero(dirty & is_crm), rules)
    _save_record_flags(con, std.loc[reblanked, ["record_no", "birth_blanked", *bk]])
    # a copy-on-write selection: what is written does not change when the caller, going on
    # beside the write, drops or replaces columns of `std`
    stored = std[_stored_columns(bk)]
    (write or (lambda step: step(con)))(
        lambda target: _insert_fresh(target, stored, new, unblanked, fingerprints, first_no)
    )
    return RecordState(
        std=std.drop(columns=["birth_blanked"]),
        dirty=dirty,
        stale=stale,
        standardised=int(new.sum()),
        removed=int(len(stale) - reblanked.sum()),
        records=int(total),
        crm_records=int(crm),
        hood=hood,
    )


def _clusters_cover(con: duckdb.DuckDBPyConnection) -> bool:
    """Every stored record has a last cluster (a neighbourhood night builds on them)."""
    tables = set(con.execute("select table_name from duckdb_tables()").fetchnumpy()["table_name"])
    if "identity_clusters" not in tables:
        return False
    ((missing,),) = con.execute(
        "select count(*) from identity_std s anti join identity_clusters c using (record_no)"
    ).fetchall()
    return not missing


def _save_gone_keys(con: duckdb.DuckDBPyConnection, stale: np.ndarray) -> None:
    """``_gone_keys``: the keys of the stale records that are no records tonight (removed, not
    changed) — what `store.last_records` otherwise finds by the night's frame holding all."""
    con.register("_stale_nos", pa.table({"record_no": stale}))
    try:
        con.execute(
            f"""
            create or replace temp table _gone_keys as
            select {", ".join(f"s.{k}" for k in KEY)} from identity_std s
            semi join _stale_nos n on n.record_no = s.record_no
            anti join _gathered g on {" and ".join(f"s.{k} = g.{k}" for k in KEY)}
            """
        )
    finally:
        con.unregister("_stale_nos")


def _default_dates(con: duckdb.DuckDBPyConnection, fresh: pa.Table, around: Around) -> np.ndarray:
    """Tonight's default birth dates (``YYYY-MM-DD``), counted over every record: the stored
    ones in SQL, the fresh ones here."""
    stored = con.execute(
        "select strftime(std_birth_date, '%Y-%m-%d') as d, count(*) as n from identity_std "
        "where std_birth_date is not null group by 1"
    ).fetchnumpy()
    dates = pd.Series(
        parse_date(pd.Series(fresh["std_birth_date"].to_pandas())).astype("string")
    ).dropna()
    counts = (
        pd.concat([pd.Series(stored["n"], index=stored["d"]), dates.value_counts()])
        .groupby(level=0)
        .sum()
    )
    return around.default_dates(counts.index.to_numpy(dtype=object), counts.to_numpy())


def _blank(dates: pd.Series, defaults: np.ndarray) -> pd.Series:
    """`dates` (``date32``) with the `defaults` (``YYYY-MM-DD``) blanked: what
    `blank_default_dates` gives on all records. Compared as dates (formatting a few hundred
    thousand dates as text took ~0.2 s)."""
    value_set = pa.array(defaults, pa.string()).cast(pa.date32())
    hit = pc.is_in(pa.array(dates, pa.date32()), value_set=value_set)
    return dates.mask(hit.to_numpy(zero_copy_only=False))


def _dirty_records(
    con: duckdb.DuckDBPyConnection,
    fresh: pa.Table,
    defaults: np.ndarray,
    rules: Sequence[BlockingRule],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records standardised tonight — the fresh ones and the stored ones whose birth-date
    blanking changes — with tonight's block key hashes (their CRM records'), as
    `neighbourhood.find` takes them; and the re-blanked ones' old hashes (``record_no`` and
    the hash columns)."""
    con.register("_defaults", pa.table({"d": pa.array(defaults, pa.string())}))
    try:
        con.execute(
            """
            create or replace temp table _flipped as
            select record_no from identity_std
            where coalesce(birth_blanked, false) <> coalesce(
                strftime(std_birth_date, '%Y-%m-%d') in (select d from _defaults), false)
            """
        )
    finally:
        con.unregister("_defaults")
    flipped = read_arrow(
        con,
        f"""
        select * exclude (gathered_no) from ({_stored_sql(con)}) as r
        where r.record_no in (select record_no from _flipped)
        """,
    )
    con.execute("drop table _flipped")
    records = arrow_to_frame(
        pa.concat_tables(
            [
                fresh.drop_columns(["gathered_no"]),
                flipped.cast(fresh.schema.remove(fresh.schema.get_field_index("gathered_no"))),
            ]
        )
    )
    bk = [rule_column(r) for r in rules]
    old_keys = records.iloc[len(fresh) :][["record_no", *bk]].reset_index(drop=True)
    records["std_birth_date"] = _blank(parse_date(records["std_birth_date"]), defaults)
    _put_block_keys(
        records, np.flatnonzero((records["record_kind"] == "customer").to_numpy()), rules
    )
    return records, old_keys


def _put_block_keys(records: pd.DataFrame, rows: np.ndarray, rules: Sequence[BlockingRule]) -> None:
    """Compute the block key hashes of `records` at positions `rows` (customer records) and
    set them in its ``bk_*`` columns, in place."""
    if not len(rows):
        return
    # the compared columns only: a copy of every column of a million CRM rows is ~1 GB
    hashes = block_key_hashes(compared_records(records, rows), rules)
    for rule in rules:  # via the nullable arrays: never through float64
        column = rule_column(rule)
        values = records[column].astype("Int64").array.copy()
        values[rows] = hashes[column].array
        records[column] = values


RECORDS_CHUNK = 500_000
"""Identity records standardised, or read back, at a time (`_standardise_fresh`,
`_read_stored`): a million-customer night has ~3.7M of them."""


def _night_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The gathered columns the night's frame keeps: the raw fields were only needed to
    standardise, the rest (observation times, references) is used downstream."""
    gathered = [row[0] for row in con.execute("describe _gathered").fetchall()]
    return [c for c in gathered if c not in (*RAW_FIELDS, "fingerprint")]


def _stored_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The night's records already in ``identity_std`` (unchanged since they were stored),
    with their gathered columns and ``gathered_no``: the columns of the night's frame."""
    join = " and ".join(f"s.{k} = g.{k}" for k in KEY)
    return f"""
        select {", ".join(f"g.{c}" for c in _night_columns(con))}, g.rowid as gathered_no,
               s.* exclude ({", ".join(KEY)}, fingerprint, display_first_name,
                            display_last_name),
               s.display_first_name as first_name, s.display_last_name as last_name
        from _gathered g join identity_std s on {join}
        """


def _night_schema(con: duckdb.DuckDBPyConnection) -> pa.Schema:
    """The Arrow schema of the night's frame, as DuckDB gives it (`_stored_sql`)."""
    return read_arrow(con, f"{_stored_sql(con)} limit 0").schema


@contextlib.contextmanager
def _large_text(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB hands text over as Arrow ``large_string`` meanwhile.

    Why: pandas' Arrow-backed strings are ``large_string``; from ``string`` (DuckDB's default)
    every text column of millions of records gets its offsets copied to 64 bits when the
    night's frame is made, beside the Arrow table it is made from."""
    con.execute("set arrow_large_buffer_size = true")
    try:
        yield
    finally:
        con.execute("reset arrow_large_buffer_size")


def _read_night(
    con: duckdb.DuckDBPyConnection, fresh: pa.Table, stored: np.ndarray | None = None
) -> pa.Table:
    """The night's records in key order, without ``gathered_no``: the stored ones (read from
    ``identity_std``) and the `fresh` ones (standardised tonight, in `_night_schema`).

    Why merged in DuckDB, a range of ``gathered_no`` at a time: merging the two Arrow tables
    by a `take` copied every column of every record once more while both were alive (the
    delta night's memory peak at a million customers). With nothing stored (a first
    night), the fresh records are the night, in key order already."""
    total = con.execute("select count(*) from _gathered").fetchall()[0][0]
    if len(fresh) == total:
        return fresh.drop_columns(["gathered_no"])
    con.register("_fresh_arrow", fresh)
    try:
        con.execute("create or replace temp table _fresh_rows as select * from _fresh_arrow")
    finally:
        con.unregister("_fresh_arrow")
    only = ""
    if stored is not None:  # `stored`: the record_no of the stored records to read
        con.register("_stored_nos_arrow", pa.table({"record_no": stored}))
        try:
            con.execute(
                "create or replace temp table _stored_nos as select * from _stored_nos_arrow"
            )
        finally:
            con.unregister("_stored_nos_arrow")
        only = "and s.record_no in (select record_no from _stored_nos)"
    night = read_arrow_by_range(
        con,
        f"""
        select * exclude (gathered_no) from (
            {_stored_sql(con)} where g.rowid >= $1 and g.rowid < $2 {only}
            union all by name
            select * from _fresh_rows where gathered_no >= $1 and gathered_no < $2
        )
        order by gathered_no
        """,
        total,
        # a neighbourhood (a few hundred thousand records) in one range: each range is a join
        # over all of ``_gathered``
        RECORDS_CHUNK if stored is None else max(total, 1),
    )
    con.execute("drop table _fresh_rows")
    con.execute("drop table if exists _stored_nos")
    return night


def _standardise_fresh(
    con: duckdb.DuckDBPyConnection,
    standardize: Callable[[pd.DataFrame], pd.DataFrame],
    first_no: int,
    schema: pa.Schema,
) -> tuple[pa.Table, pa.ChunkedArray]:
    """Standardise the gathered records not in ``identity_std`` (new or changed), numbered from
    `first_no` in key order: their rows of the night's frame (of `schema`, with no birth-date
    blanking or block keys yet) and their fingerprints, in the same order.

    Why in chunks: a record's standardised columns depend on that record alone, so chunks give
    what one pass gives, while memory holds one chunk's raw and standardised frames at a time
    (what is kept is the compact Arrow copy of the columns the night needs).
    """
    join = " and ".join(f"s.{k} = g.{k}" for k in KEY)
    con.execute(
        f"""
        create or replace temp table _fresh as
        select g.rowid as gathered_no, row_number() over (order by g.rowid) - 1 as fresh_no
        from _gathered g anti join identity_std s on {join}
        """
    )
    count = con.execute("select count(*) from _fresh").fetchall()[0][0]
    tables, fingerprints = [schema.empty_table()], []
    for start in range(0, count, RECORDS_CHUNK):
        raw = read_arrow(
            con,
            "select g.*, f.gathered_no from _fresh f join _gathered g on g.rowid = f.gathered_no "
            "where f.fresh_no >= ? and f.fresh_no < ? order by f.fresh_no",
            [start, start + RECORDS_CHUNK],
        )
        fingerprints += raw["fingerprint"].chunks
        raw = arrow_to_frame(raw.drop_columns(["fingerprint"]))
        std = standardize(raw.drop(columns=["gathered_no"]))
        std = std.assign(
            gathered_no=raw["gathered_no"].to_numpy(),
            record_no=np.arange(len(std), dtype=np.int64) + first_no + start,
            birth_blanked=None,
            **dict.fromkeys(c for c in schema.names if c.startswith("bk_")),
        )
        tables.append(frame_to_arrow(std[schema.names]).cast(schema))
    con.execute("drop table _fresh")
    return pa.concat_tables(tables), pa.chunked_array(fingerprints, pa.uint64())


def _stored_columns(bk: list[str]) -> list[str]:
    """The night frame's columns ``identity_std`` stores (`bk`: the block key hash columns)."""
    return [*KEY, "record_no", "first_name", "last_name", *STD_COLUMNS, "birth_blanked", *bk]


def _insert_fresh(
    con: duckdb.DuckDBPyConnection,
    std: pd.DataFrame,
    new: np.ndarray,
    unblanked: pd.Series,
    fingerprints: pa.ChunkedArray,
    first_no: int,
) -> None:
    """Write tonight's new and changed records to ``identity_std``, complete: standardised
    values (birth dates as standardised, before blanking), whether the date was blanked, and
    the block key hashes. `std` holds the night's records with the stored columns
    (`_stored_columns`)."""
    rows = np.flatnonzero(new)
    # a chunk at a time: on a full night every record is new, and a copy of all their columns
    # at once was the standardise phase's memory peak
    for start in range(0, len(rows), RECORDS_CHUNK):
        chunk = rows[start : start + RECORDS_CHUNK]
        frame = std.iloc[chunk].rename(
            columns={"first_name": "display_first_name", "last_name": "display_last_name"}
        )
        frame["std_birth_date"] = unblanked.iloc[chunk].array
        # the fingerprints are in record_no order (from `first_no`)
        fresh_no = frame["record_no"].to_numpy(dtype=np.int64) - first_no
        table = frame_to_arrow(frame).append_column("fingerprint", fingerprints.take(fresh_no))
        del frame
        con.register("_fresh_std", table)
        try:
            con.execute("insert into identity_std by name select * from _fresh_std")
        finally:
            con.unregister("_fresh_std")


def _save_record_flags(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """Update stored records whose birth-date blanking changed tonight (usually none: new
    records are inserted complete by `_insert_fresh`)."""
    if not len(rows):
        return
    con.register("_flags", frame_to_arrow(rows))
    sets = ", ".join(f"{c} = f.{c}" for c in rows.columns if c != "record_no")
    con.execute(
        f"update identity_std set {sets} from _flags f where identity_std.record_no = f.record_no"
    )
    con.unregister("_flags")


def block_key_hashes(records: pd.DataFrame, rules: Sequence[BlockingRule]) -> pd.DataFrame:
    """A 64-bit hash of every record's key under each rule (``bk_<rule>``; NA = no key).

    Equal keys give equal hashes on any night (the hash of the key parts' text), so blocks can
    be matched across nights without renumbering; distinct keys collide with probability ~2^-64.
    """
    out = {}
    keys = RecordKeys(records)
    hashes: dict[str, np.ndarray] = {}  # per part: the hash of each distinct value's text
    for rule in rules:
        combined = np.zeros(len(records), dtype=np.uint64)
        valid = np.ones(len(records), dtype=bool)
        for part in rule.columns:
            codes, uniques = keys.codes(part)
            if part not in hashes:
                values = uniques.to_pylist() if hasattr(uniques, "to_pylist") else list(uniques)
                text = np.asarray([f"{part}={v}" for v in values], dtype=object)
                # the values are distinct already: categorising them first would only cost
                hashes[part] = (
                    pd.util.hash_array(text, categorize=False)
                    if len(text)
                    else np.zeros(0, np.uint64)
                )
            hashed = hashes[part]
            valid &= codes >= 0
            if not len(hashed):
                continue
            with np.errstate(over="ignore"):
                combined = combined * np.uint64(0x100000001B3) ^ hashed[np.maximum(codes, 0)]
        out[rule_column(rule)] = pd.arrays.IntegerArray(combined.view(np.int64), ~valid)
    return pd.DataFrame(out, index=records.index)


# --------------------------------------------------------------------------------------------
# candidate pairs and their levels


@dataclass(frozen=True)
class StoredPairs:
    """Reads tonight's candidate pairs back from ``match_pairs`` (after `refresh_pairs` wrote
    them) in the shape and order of a full run's `compare` output."""

    con: duckdb.DuckDBPyConnection
    position: np.ndarray  # record_no -> std position (-1: not a customer record tonight)
    record_no: np.ndarray  # per std row
    rules: Sequence[BlockingRule]
    partial: bool = False
    """std holds a neighbourhood (`neighbourhood`): a pair with an end outside it is left out
    (no link: a link of a record in it lies in it, see the module docstring there)"""

    def read(self, records: np.ndarray | None = None) -> pd.DataFrame:
        """All pairs, or (`records`: a mask over std rows) the pairs with an end among them."""
        sql = "select * from match_pairs"
        if records is None:
            return self._frame(read_arrow(self.con, sql))
        nos = pa.table({"record_no": self.record_no[records]})
        self.con.register("_pairs_around", nos)
        try:
            table = read_arrow(
                self.con,
                f"{sql} where left_no in (select record_no from _pairs_around) "
                "or right_no in (select record_no from _pairs_around)",
            )
        finally:
            self.con.unregister("_pairs_around")
        return self._frame(table)

    def _frame(self, table: pa.Table) -> pd.DataFrame:
        def column(name: str, dtype: type) -> np.ndarray:
            return table[name].to_numpy().astype(dtype, copy=False)

        lo = _lookup(self.position, column("left_no", np.int64))
        hi = _lookup(self.position, column("right_no", np.int64))
        inside = (lo >= 0) & (hi >= 0)
        if not self.partial and not inside.all():  # `refresh_pairs` deletes gone records' pairs
            raise RuntimeError("match_pairs holds a pair of a record that is gone tonight")
        levels = {c: column(c, np.int8)[inside] for c in LEVEL_COLUMNS}
        return pairs_frame(
            lo[inside],
            hi[inside],
            column("rules", np.int64)[inside],
            levels,
            self.rules,
            len(self.record_no),
        )


def pairs_frame(
    lo: np.ndarray,
    hi: np.ndarray,
    masks: np.ndarray,
    levels: dict[str, np.ndarray],
    rules: Sequence[BlockingRule],
    n: int,
) -> pd.DataFrame:
    """Pairs of std positions (either end first) as `compare` gives them: left < right, sorted
    by (left, right), the rule masks as names, the level columns."""
    swap = lo > hi
    lo, hi = np.where(swap, hi, lo), np.where(swap, lo, hi)
    del swap
    order = lex_order(lo, hi, n)
    frame = pd.DataFrame(
        {"left": lo[order], "right": hi[order], "rules": rule_names(masks[order], rules)},
        copy=False,
    )
    del lo, hi
    for c in LEVEL_COLUMNS:
        frame[c] = levels[c][order]
    return frame


@dataclass(frozen=True)
class PairState:
    """All candidate pairs of the night with their levels (what `compare` would give), read on
    demand: `all`, or `around` some records.

    Why on demand: on a delta night nearly all of ~9.5M pairs at a million customers are last
    night's, kept in ``match_pairs`` as they were; a night that re-clusters only the scope of
    its changes (`scoped`) needs the pairs around that scope, not a frame of all of them."""

    count: int  # all candidate pairs tonight
    oversized: pd.DataFrame  # rule, key, size
    compared: int  # pairs compared tonight (the rest reused stored levels)
    fresh: pd.DataFrame | None  # the pairs new tonight or whose rules changed (None: all)
    gone_ends: np.ndarray  # std positions of both ends of pairs gone tonight between records
    # that are still there (a block grew past the cap)
    stored: StoredPairs
    whole: pd.DataFrame | None = None  # all pairs, when tonight computed them all (none stored)

    def all(self) -> pd.DataFrame:
        return self.whole if self.whole is not None else self.stored.read()

    def around(self, records: np.ndarray) -> pd.DataFrame:
        """The pairs with an end among `records` (a mask over std rows), in `all`'s order."""
        if self.whole is None:
            return self.stored.read(records)
        left = self.whole["left"].to_numpy(dtype=np.int64)
        right = self.whole["right"].to_numpy(dtype=np.int64)
        rows = np.flatnonzero(records[left] | records[right])
        return self.whole.iloc[rows].reset_index(drop=True)

    def fresh_pairs(self) -> pd.DataFrame:
        return self.all() if self.fresh is None else self.fresh


def refresh_pairs(
    con: duckdb.DuckDBPyConnection,
    state: RecordState,
    customers: np.ndarray,
    max_block_size: int,
    rules: Sequence[BlockingRule] = DEFAULT_RULES,
    mapper: Mapper = LOCAL,
    *,
    record_keys: RecordKeys,
) -> PairState:
    """The night's candidate pairs among the customer records at std positions `customers`.

    ``record_keys``: part codes over ``compared_records(std, customers)``, shared with the term
    frequencies and the estimation of u.

    Only the stored pairs a night can change are read: those regenerated tonight, those
    whose smaller-numbered end is gone or changed, and those found by a rule whose block
    tonight regenerates (the block holds both ends). That is every pair a night can change: a
    pair whose other end is gone or changed was found by a rule whose key the two shared, and
    the blocks of a gone or changed record's old keys are regenerated. Any other stored pair
    keeps its rules and levels.
    """
    std = state.std
    n_c = len(customers)
    record_no = std["record_no"].to_numpy(dtype=np.int64)[customers]
    dirty = state.dirty[customers]
    # pair key = smaller record_no * size + larger, over tonight's records and the stored
    # pairs' (a gone record can hold the highest number: keys must not alias)
    ((stored_top, stored_count),) = con.execute(
        "select coalesce(max(greatest(left_no, right_no)), -1), count(*) from match_pairs"
    ).fetchall()
    size = max(int(record_no.max(initial=-1)), int(stored_top)) + 1
    index_of_no = np.full(size, -1, dtype=np.int64)  # record_no -> customer index
    index_of_no[record_no] = np.arange(n_c)

    # 1. regenerate the affected blocks of every rule
    gen_keys, gen_masks, oversized, affected, near = [], [], [], [], []
    con.execute(neighbourhood.OVERSIZED_DDL)
    known = read_frame(con, "select rule, key_hash, key from oversized_keys")
    for bit, rule in enumerate(rules):
        column = rule_column(rule)
        keys_series = std[column].iloc[customers]
        valid = keys_series.notna().to_numpy()
        keys = keys_series.to_numpy(dtype=np.int64, na_value=0)
        old = state.stale[column].dropna().to_numpy(dtype=np.int64)
        hit = unique_sorted(np.concatenate([keys[dirty & valid], old]))
        affected.append(hit)
        members = np.flatnonzero(valid & _isin(keys, hit))
        near.append(record_no[members])
        codes = np.full(n_c, -1, dtype=np.int64)
        codes[members], uniques = pd.factorize(keys[members])
        cap = rule.cap(max_block_size)
        sizes = np.bincount(codes[members]) if len(members) else np.zeros(0, np.int64)
        if state.hood is not None:
            # the frame holds an oversized block in part: its size and members are the SQL's
            over = state.hood.oversized[bit]
            sizes = sizes.astype(np.int64)
            at = pd.Index(over["key"]).get_indexer(np.asarray(uniques, dtype=np.int64))
            sizes[at >= 0] = over["size"].to_numpy(dtype=np.int64)[at[at >= 0]]
            near[-1] = np.concatenate([near[-1], state.hood.oversized_members[bit]])
            # (a block oversized last night too has no stored pair of the rule: not needed)
        big = np.flatnonzero(sizes > cap)
        if len(big):  # reported with the key of the block's first record, as a full run does
            first = np.full(len(sizes), -1, dtype=np.int64)
            first[codes[members][::-1]] = members[::-1]
            oversized.append(
                _oversized_rows(
                    rule, std, customers[first[big]], keys[first[big]], sizes[big], known
                )
            )
        if len(big) and state.hood is not None:  # no pair of an oversized block
            codes[np.isin(codes, big)] = -1
        left, right = pairs_for_rule(codes, cap)
        gen_keys.append(_pair_key(record_no[left], record_no[right], size))
        gen_masks.append(np.full(len(left), 1 << bit, dtype=np.int64))
    gen_key, gen_mask = or_by_key(np.concatenate(gen_keys), np.concatenate(gen_masks))
    # pair-sized arrays are dropped as soon as they are used: on a full night at a million
    # customers each is ~75 MB, and comparing the pairs is the stage's memory peak
    del gen_keys, gen_masks

    # 2. stored pairs between unchanged records keep their levels and unaffected rules
    stored = _stored_pairs_near(con, near, gen_key, size, state.stale["record_no"].to_numpy())
    del near
    li = _lookup(index_of_no, stored["left_no"].to_numpy(dtype=np.int64))
    ri = _lookup(index_of_no, stored["right_no"].to_numpy(dtype=np.int64))
    keep = (li >= 0) & (ri >= 0)
    keep[keep] &= ~dirty[li[keep]] & ~dirty[ri[keep]]
    # every stored pair's key and rules as stored, to write tonight's changes only
    stored_pairs = _pair_key(
        stored["left_no"].to_numpy(dtype=np.int64),
        stored["right_no"].to_numpy(dtype=np.int64),
        size,
    )
    stored, li = stored[keep], li[keep]
    mask = stored["rules"].to_numpy(dtype=np.int64).copy()
    stored_rules = mask.copy()
    for bit, rule in enumerate(rules):
        has = (mask >> bit) & 1 == 1
        keys_series = std[rule_column(rule)].iloc[customers]
        keys = keys_series.to_numpy(dtype=np.int64, na_value=0)
        cleared = has & _isin(keys[li], affected[bit])
        mask[cleared] &= ~(1 << bit)
    stored_key = _pair_key(
        stored["left_no"].to_numpy(dtype=np.int64),
        stored["right_no"].to_numpy(dtype=np.int64),
        size,
    )
    order = np.argsort(stored_key)
    stored_key, mask, stored_rules = stored_key[order], mask[order], stored_rules[order]
    stored_levels = {c: stored[c].to_numpy(dtype=np.int8)[order] for c in LEVEL_COLUMNS}

    # 3. tonight's pairs: the union; levels reused where stored, compared otherwise
    live = mask != 0
    all_key, all_mask = or_by_key(
        np.concatenate([stored_key[live], gen_key]), np.concatenate([mask[live], gen_mask])
    )
    del gen_key, gen_mask, live
    at = np.searchsorted(stored_key, all_key)
    known = at < len(stored_key)
    known[known] = stored_key[at[known]] == all_key[known]
    levels = {c: np.zeros(len(all_key), dtype=np.int8) for c in LEVEL_COLUMNS}
    for c in LEVEL_COLUMNS:
        levels[c][known] = stored_levels[c][at[known]]
    # a pair kept with its levels and rules is stored as it is; the rest is (re)written
    unchanged = known.copy()
    unchanged[known] = all_mask[known] == stored_rules[at[known]]
    del at, stored_key, stored_levels, stored_rules
    position = np.full(size, -1, dtype=np.int64)
    position[record_no] = customers
    # std positions of each pair (a record's record_no and std position need not grow
    # together: new records are numbered after the stored ones)
    lo, hi = np.divmod(all_key, size)
    lo, hi = position[lo], position[hi]
    if not known.all():
        todo = slice(None) if not known.any() else np.flatnonzero(~known)  # a full night: all
        involved = unique_sorted(np.concatenate([lo[todo], hi[todo]]))
        # a full night compares nearly every customer record: use the shared codes; a delta
        # night encodes just the few records its new pairs name
        if 2 * len(involved) > n_c:
            records, compare_keys = record_keys.records, record_keys
        else:
            records, compare_keys = compared_records(std, involved), None
        del involved
        first, second = np.minimum(lo[todo], hi[todo]), np.maximum(lo[todo], hi[todo])
        fresh = compare_pairs(
            records,
            pd.DataFrame(
                {"left": first, "right": second, "rules": rule_names(all_mask[todo], rules)},
                copy=False,
            ),
            mapper,
            compare_keys,
        )
        del first, second
        for c in LEVEL_COLUMNS:
            levels[c][todo] = fresh[c].to_numpy(dtype=np.int8)
        del fresh
    compared = int((~known).sum())
    del known
    gone = _gone_pairs(all_key[unchanged], stored_pairs)
    gone_ends = _gone_ends(gone, size, position)
    _save_pairs(con, all_key, size, all_mask, levels, unchanged, gone, first=not stored_count)
    count = int(stored_count) - len(gone) + int((~unchanged).sum())
    del all_key, stored_pairs, gone

    # 4. in the order and shape of a full run's `compare` output
    oversized_frame = pd.concat(
        [pd.DataFrame(columns=["rule", "key_hash", "key", "size"]), *oversized], ignore_index=True
    )
    merged = _merge_oversized(con, oversized_frame, affected, rules)
    reader = StoredPairs(
        con, position, std["record_no"].to_numpy(dtype=np.int64), rules, state.hood is not None
    )
    if not stored_count:  # all of tonight's pairs are in memory: keep them (a full night)
        whole = pairs_frame(lo, hi, all_mask, levels, rules, len(std))
        return PairState(count, merged, compared, None, gone_ends, reader, whole)
    changed = np.flatnonzero(~unchanged)
    fresh_frame = pairs_frame(
        lo[changed],
        hi[changed],
        all_mask[changed],
        {c: v[changed] for c, v in levels.items()},
        rules,
        len(std),
    )
    return PairState(count, merged, compared, fresh_frame, gone_ends, reader)


def _stored_pairs_near(
    con: duckdb.DuckDBPyConnection,
    near: list[np.ndarray],
    generated: np.ndarray,
    size: int,
    stale: np.ndarray,
) -> pd.DataFrame:
    """The stored pairs a night can change (see `refresh_pairs`): found by a rule (bit) whose
    regenerated blocks hold their smaller-numbered end (`near`: per rule, the record numbers
    in them), `generated` tonight (pair keys over `size`), or whose smaller-numbered end is
    among the `stale` record numbers."""
    bits = np.concatenate([np.full(len(nos), bit, dtype=np.int64) for bit, nos in enumerate(near)])
    left, right = np.divmod(generated, size)
    tables = {
        "_near_nos": pa.table({"bit": bits, "record_no": np.concatenate(near)}),
        "_generated": pa.table({"left_no": left, "right_no": right}),
        "_stale_nos": pa.table({"record_no": stale.astype(np.int64)}),
    }
    for name, table in tables.items():
        con.register(name, table)
    try:
        return read_frame(
            con,
            """
            select p.* from match_pairs p
            semi join _near_nos n on n.record_no = p.left_no and (p.rules >> n.bit) & 1 = 1
            union
            select p.* from match_pairs p
            semi join _generated g on g.left_no = p.left_no and g.right_no = p.right_no
            union
            select p.* from match_pairs p semi join _stale_nos s on s.record_no = p.left_no
            """,
        )
    finally:
        for name in tables:
            con.unregister(name)


def _gone_ends(gone: np.ndarray, size: int, position: np.ndarray) -> np.ndarray:
    """std positions of both ends of the `gone` pairs (keys over `size`) whose two records
    are still there tonight (`position`: record_no -> std position, -1 when gone)."""
    lo, hi = np.divmod(gone, size)
    lo, hi = _lookup(position, lo), _lookup(position, hi)
    both = (lo >= 0) & (hi >= 0)
    return unique_sorted(np.concatenate([lo[both], hi[both]]))


def compared_records(std: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The records at std `positions` as blocking and comparing take them: their ``std_*``
    columns and ``record_idx`` = std position.

    Why only those columns (as a Dask partition gets them, `partitions.split_pairs`): they are
    all that blocking and comparing read, and a copy of every column of a million customer
    records costs ~0.5 GB more at the night's memory peak."""
    compared = [i for i, c in enumerate(std.columns) if c.startswith("std_")]
    return std.iloc[positions, compared].assign(record_idx=positions.astype(np.int64))


def _isin(values: np.ndarray, test: np.ndarray) -> np.ndarray:
    """`np.isin` by hashing: linear, where `np.isin` sorts (on a full night `test` holds every
    block key)."""
    return pd.Series(values).isin(test).to_numpy()


def _pair_key(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    return np.minimum(a, b) * size + np.maximum(a, b)


def _lookup(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    inside = values < len(table)
    out = np.full(len(values), -1, dtype=np.int64)
    out[inside] = table[values[inside]]
    return out


def _gone_pairs(kept: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """The keys of `stored` pairs that are not `kept` (sorted keys) as they are."""
    if not len(kept):
        return stored
    at = np.minimum(np.searchsorted(kept, stored), len(kept) - 1)
    return stored[kept[at] != stored]


def _save_pairs(
    con: duckdb.DuckDBPyConnection,
    keys: np.ndarray,
    size: int,
    rules: np.ndarray,
    levels: dict[str, np.ndarray],
    unchanged: np.ndarray,
    gone: np.ndarray,
    first: bool,
) -> None:
    """Bring ``match_pairs`` to tonight's pairs (`keys`, sorted pair keys over `size`, with
    their `rules` and `levels`): the stored pairs that are not `unchanged` tonight (keys
    `gone`, see `_gone_pairs`) are deleted and tonight's other pairs inserted.

    Why by key: a delta night keeps nearly all of ~9.5M pairs at a million customers as they
    are, and rewriting them all cost more than finding the few hundred thousand that changed.
    With nothing stored (`first`) the table is written whole."""
    if first:
        # record numbers again from the key (cheap) rather than two more pair-sized arrays
        # kept through the comparison
        left, right = np.divmod(keys, size)
        frame = pd.DataFrame({"left_no": left, "right_no": right, "rules": rules, **levels})
        write_table(con, "match_pairs", frame)
        return
    changed = ~unchanged
    left, right = np.divmod(keys[changed], size)
    fresh = {"left_no": left, "right_no": right, "rules": rules[changed]}
    fresh |= {c: values[changed] for c, values in levels.items()}
    gone_left, gone_right = np.divmod(gone, size)
    con.register("_gone_pairs", pa.table({"left_no": gone_left, "right_no": gone_right}))
    con.register("_fresh_pairs", pa.table(fresh))
    try:
        con.execute(
            "delete from match_pairs p using _gone_pairs g "
            "where p.left_no = g.left_no and p.right_no = g.right_no"
        )
        con.execute("insert into match_pairs by name select * from _fresh_pairs")
    finally:
        con.unregister("_gone_pairs")
        con.unregister("_fresh_pairs")


def _oversized_rows(
    rule: BlockingRule,
    std: pd.DataFrame,
    first_rows: np.ndarray,
    key_hashes: np.ndarray,
    sizes: np.ndarray,
    known: pd.DataFrame,
) -> pd.DataFrame:
    """One row per oversized block of `rule`; display keys of blocks already reported last night
    are reused, the others rendered from each block's first record (one pass per rule)."""
    known = known[known["rule"] == rule.name].drop_duplicates("key_hash").set_index("key_hash")
    keys = pd.Series(key_hashes).map(known["key"]).to_numpy(dtype=object)
    new = np.flatnonzero(pd.isna(keys))
    if len(new):
        codes, display = block_keys(std.iloc[first_rows[new]], rule)
        keys[new] = [display[int(code)] for code in codes]
    return pd.DataFrame(
        {"rule": rule.name, "key_hash": key_hashes, "key": keys, "size": sizes.astype(np.int64)}
    )


def _merge_oversized(
    con: duckdb.DuckDBPyConnection,
    tonight: pd.DataFrame,
    affected: list[np.ndarray],
    rules: Sequence[BlockingRule],
) -> pd.DataFrame:
    """Last night's oversized blocks that no change touched, plus tonight's affected ones."""
    previous = con.execute("select rule, key_hash, key, size from oversized_keys").df()
    kept = [
        previous[(previous["rule"] == rule.name) & ~previous["key_hash"].isin(affected[bit])]
        for bit, rule in enumerate(rules)
    ]
    merged = pd.concat([*kept, tonight], ignore_index=True)
    order = {rule.name: bit for bit, rule in enumerate(rules)}
    merged = merged.sort_values(
        ["rule", "key"], key=lambda c: c.map(order) if c.name == "rule" else c
    )
    con.register("_oversized", merged)
    con.execute("create or replace table oversized_keys as select * from _oversized")
    con.unregister("_oversized")
    return merged[["rule", "key", "size"]].reset_index(drop=True).astype({"size": "int64"})


# --------------------------------------------------------------------------------------------
# match parameters: estimate, or reuse the stored ones


@dataclass(frozen=True)
class ParamsChoice:
    """The parameters a night scores with and where they came from."""

    params: Params | None
    source: str  # "estimated" | "reused" | "shipped" (too few records for EM) | "none"
    run_id: str | None  # the run that estimated them
    records: int | None  # customer records they were estimated on
    tf_frozen: bool = False
    """the term frequencies are the ones stored with the reused parameters (`term_counts`),
    as last night's were: a pair of unchanged records weighs what it weighed then"""


def stored_params(con: duckdb.DuckDBPyConnection) -> ParamsChoice | None:
    """The last estimated parameters (`match_params` of the previous run), if any."""
    columns = set(
        con.execute(
            "select column_name from duckdb_columns() where table_name = 'match_params'"
        ).fetchnumpy()["column_name"]
    )
    if "params_records" not in columns:
        return None
    row = con.execute(
        "select params, params_run_id, params_records from match_params "
        "where params_source in ('estimated', 'reused') and params is not null"
    ).fetchall()
    if not row:
        return None
    text, run_id, records = row[0]
    return ParamsChoice(Params.from_json(text), "reused", run_id, int(records))


def choose_params(
    stored: ParamsChoice | None,
    records: pd.DataFrame,
    levels: Callable[[], pd.DataFrame],
    min_records_to_estimate: int,
    reestimate_growth: float | None,
    run_id: str,
    seed: int = 0,
    keys: RecordKeys | None = None,
    count: int = -1,
) -> ParamsChoice:
    """Shipped parameters for few records; the stored ones while the record count stays within
    `reestimate_growth` of the count they were estimated on; else EM on all of tonight's pairs
    (exactly what a full run estimates; `levels` gives them). `count`: the customer records
    tonight, when `records` are not all of them (a neighbourhood night)."""
    n = len(records) if count < 0 else count
    if n < min_records_to_estimate:
        return ParamsChoice(Params.load(DEFAULT_PARAMS_PATH), "shipped", None, None)
    if stored is not None and within_growth(stored, n, reestimate_growth):
        return stored
    u = estimate_u(
        records,
        DEFAULT_COMPARISONS,
        n_pairs=min(1_000_000, n * (n - 1) // 2),
        seed=seed,
        keys=keys,
    )
    params = estimate_m(levels(), u, n_records=n, comparisons=DEFAULT_COMPARISONS)
    return ParamsChoice(params, "estimated", run_id, n)


def within_growth(stored: ParamsChoice, records: int, reestimate_growth: float) -> bool:
    """`records` customer records are close enough to the count `stored` was estimated on for
    its parameters to be reused (`choose_params`)."""
    return abs(records - stored.records) <= reestimate_growth * stored.records


def term_counts(
    con: duckdb.DuckDBPyConnection, choice: ParamsChoice, keys: RecordKeys
) -> tuple[FrozenCounts | None, ParamsChoice]:
    """The frozen term counts tonight scores with (None: tonight's records' own), and
    `choice` saying which (`ParamsChoice.tf_frozen`).

    Reused parameters come with the counts stored beside them; parameters estimated tonight
    (or reused without stored counts, as after an upgrade) store tonight's counts, which are
    exactly what tonight scores with. Shipped parameters score without term frequencies."""
    if choice.source == "reused":
        stored = FrozenCounts.load(con, choice.run_id)
        if stored is not None:
            return stored, replace(choice, tf_frozen=True)
    if choice.source in ("estimated", "reused"):
        save_counts(con, keys, choice.run_id)
    return None, choice


@dataclass(frozen=True)
class Work:
    """What a night actually did, reported in `identity_runs` and the run summary."""

    records: int  # identity records tonight
    standardised: int  # new or changed records standardised tonight
    removed: int  # records gone since the last run (or replaced by a changed version)
    candidate_pairs: int  # all candidate pairs among customer records
    pairs_compared: int  # of which compared tonight (the rest kept their stored levels)
    params: str  # estimated | reused | shipped | none | unchanged (nothing resolved tonight)
    state_signature: str = ""  # code and settings the persisted state was computed with
    reclustered: int = 0  # records clustered tonight: all, or the scope of tonight's changes
    records_read: int = 0  # records in the night's frame: all, or the neighbourhood


@dataclass
class NightLinks:
    """Tonight's candidate pairs (`PairState`), scored on demand: all of them (`all`), or
    only the pairs that touch some records (`around`).

    Why on demand: with frozen term frequencies a night that re-clusters only a scope
    (`scoped`) needs the links of that scope alone; scoring the ~9.5M pairs of a million
    customers (term frequencies, weights, the links' evidence columns) every night cost ~3 s
    and was the delta night's memory peak."""

    pairs: PairState
    score: Callable[[pd.DataFrame], pd.DataFrame]
    """`matching.links_from_levels` of some of tonight's pairs (`PairState`), term frequencies
    added"""
    params: Params | None

    def _result(self, links: pd.DataFrame) -> MatchResult:
        return MatchResult(links, self.params, self.pairs.count, self.pairs.oversized)

    def all(self) -> MatchResult:
        """The links among all of tonight's pairs."""
        return self._result(self.score(self.pairs.all()))

    def around(self, records: np.ndarray) -> MatchResult:
        """The links of the pairs with an end among `records` (a mask over std rows), in
        the order `all` gives them."""
        return self._result(self.score(self.pairs.around(records)))

    def release(self) -> None:
        """Drop the pairs' frame (if tonight computed them all) once the night's links are
        taken: at a million customers it holds ~9.5M pairs, which clustering does not need
        beside its own arrays."""
        self.pairs = replace(self.pairs, whole=None)

    def touched(self) -> np.ndarray:
        """std positions of the ends of tonight's links whose pair is new or changed, and of
        the pairs gone between records still there (`PairState`).

        Why links only: a candidate pair below the threshold is no edge of the record graph,
        so it cannot move a cluster; the few hundred thousand pairs a 1 % night compares
        would otherwise pull most of their ends' customers into the re-clustered scope."""
        links = self.score(self.pairs.fresh_pairs())
        left = links["left"].to_numpy(dtype=np.int64)
        right = links["right"].to_numpy(dtype=np.int64)
        return unique_sorted(np.concatenate([left, right, self.pairs.gone_ends]))


def incremental_links(
    con: duckdb.DuckDBPyConnection,
    state: RecordState,
    match_probability: float,
    max_block_size: int,
    min_records_to_estimate: int,
    reestimate_growth: float | None,
    run_id: str,
    mapper: Mapper = LOCAL,
) -> tuple[NightLinks, ParamsChoice, Work]:
    """Tonight's candidate pairs among the customer records, from the persisted pairs plus
    tonight's delta, with the parameters to score them: their links (`NightLinks.all`) are
    what `matching.probabilistic_links` gives on the same records and parameters."""
    std = state.std
    customers = np.flatnonzero((std["record_kind"] == "customer").to_numpy())
    stored = stored_params(con) if reestimate_growth is not None else None
    records = compared_records(std, customers)
    keys = RecordKeys(records)  # part codes shared by comparing, term frequencies and u
    pairs = refresh_pairs(con, state, customers, max_block_size, mapper=mapper, record_keys=keys)
    none = ParamsChoice(None, "none", None, None)
    work = Work(
        state.records, state.standardised, state.removed, pairs.count, pairs.compared, "none"
    )
    if state.crm_records < 2 or not pairs.count:
        nothing = NightLinks(pairs, lambda levels: EMPTY.copy(), None)
        return nothing, none, work
    choice = choose_params(
        stored,
        records,
        pairs.all,
        min_records_to_estimate,
        reestimate_growth,
        run_id,
        keys=keys,
        count=state.crm_records,
    )
    counts, choice = term_counts(con, choice, keys)
    if state.hood is not None and not choice.tf_frozen:
        # the caller checked that the stored parameters and their counts are reused
        raise RuntimeError("a neighbourhood night must score with frozen term frequencies")
    tf_adjust = choice.source != "shipped"

    def score(levels: pd.DataFrame) -> pd.DataFrame:
        levels = term_frequencies(records, levels, keys, counts=counts)
        return links_from_levels(levels, choice.params, tf_adjust, match_probability)

    work = Work(**{**work.__dict__, "params": choice.source})
    return NightLinks(pairs, score, choice.params), choice, work
