"""Resolve stage: give every CRM record, guest order and survey respondent a `customer_id`.

Identity records are gathered from the staged CRM records, orders and survey responses,
standardised (the `standardize` package), blocked and compared (`blocking.py`,
`comparisons.py`), scored (`matching.py`: Fellegi-Sunter weights), and clustered into connected
components under integrity guards (`clustering.py`). Besides the scored links there are
deterministic ones: an order or survey that names a CRM record by id belongs to that record,
and a transaction sharing an e-mail key, phone or loyalty id with another record is linked to it
(`link_pairs`; two CRM records only ever by the scored links). Records with no identifier at
all (anonymous till receipts) get no customer. Stable ids are voted per cluster
(`stable_ids.py`) and the golden record is built in SQL (`golden.py`).

Writes `identity_records` (one per CRM record or distinct transaction identifiers: standardised
values, customer id, the rule that linked it), `customer_xref` (every source record →
customer_id) and `match_evidence` (every link, field by field).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ccv.config import MEMORY_SIZE, Config, IdentityConfig
from ccv.identity import (
    blocking,
    clustering,
    comparisons,
    incremental,
    keyed_writes,
    neighbourhood,
    scoped,
    scoring,
    term_counts,
    unchanged,
)
from ccv.identity import standardize as standardize_module
from ccv.identity.arrays import lex_order
from ccv.identity.clustering import Guards, cluster, connected_components
from ccv.identity.frames import frame_to_arrow, release_freed_memory
from ccv.identity.golden import build_golden
from ccv.identity.incremental import (
    Around,
    NightLinks,
    ParamsChoice,
    RecordState,
    Work,
    code_digest,
    drop_state,
    incremental_links,
    refresh_records,
    state_is_current,
    state_signature,
    stored_params,
    within_growth,
)
from ccv.identity.matching import MatchResult, probabilistic_links, probability_to_weight
from ccv.identity.partitions import LOCAL, Mapper
from ccv.identity.scoring import Params
from ccv.identity.stable_ids import assign_known
from ccv.identity.standardize import (
    clean_text,
    normalize_phone,
    split_full_name,
    standardize_customers,
)
from ccv.identity.store import (
    ensure_identity_tables,
    has_last_records,
    id_registry,
    last_records,
    record_assignment,
    record_work,
)
from ccv.identity.term_counts import FrozenCounts
from ccv.identity.threads import writes_beside
from ccv.progress import advance
from ccv.warehouse.models import save_state

LINK_KEYS = {"std_email_key": "email", "std_phone": "phone", "std_loyalty_id": "loyalty_id"}
# Deterministic links are all strong (above any strong threshold up to p = 0.999999); their order
# decides which link a guard cuts first.
LINK_WEIGHTS = {"customer_record_id": 40.0, "loyalty_id": 30.0, "email": 25.0, "phone": 22.0}
RULE_LABELS = ("self", "probabilistic", *LINK_WEIGHTS)
"""How a record can join its customer (`match_rule_codes`; identity_clusters keeps the code)."""


@dataclass(frozen=True)
class ResolveResult:
    """Counts a run reports about identity resolution."""

    records: int
    customers: int
    anonymous_records: int
    events: dict[str, int] = field(default_factory=dict)
    work: Work | None = None
    """what tonight computed: records standardised, pairs compared, parameters estimated or
    reused (also appended to the `identity_runs` table)"""


# The steps of `resolve`, for progress reports (`ccv.progress`).
PHASES = (
    "standardise",
    "block, compare, score",
    "cluster",
    "stable ids",
    "write tables",
    "golden records",
)


def _phase(name: str) -> None:
    advance("resolve", PHASES.index(name), len(PHASES), name)


# Transactions (orders, survey responses, consent events) carry only identifiers; all those of
# one source with the same identifiers are one *identity record*, so ten million orders of a
# million customers resolve as about a million records. Staging keys each transaction by its
# record (``record_key``: '~' and the md5 of its identifier tuple, NULL without identifiers; see
# sql/staging/stg_orders.sql): computed once per staged row, not every night, it maps every
# transaction back to its identity record in SQL.
#
# kind -> (staged table, id column, time column, SQL naming the referenced CRM source or None to
# take it from the source's `customer_source` in the config)
TRANSACTIONS = {
    "order": ("stg_orders", "order_id", "ordered_at", None),
    "survey": ("stg_survey_responses", "response_id", "submitted_at", None),
    "consent": ("stg_consents", "consent_id", "consented_at", "customer_source"),
}

# Consent events derived from a CRM record's own opt-in flags (sql/staging/stg_consents.sql)
# belong to that record by construction: they are not identity records of their own but map
# to the record's customer in the crosswalk (`crosswalk_parts`, rule `customer_record_id`). As
# identity records they were a third of all records at a million customers (one per CRM record
# with a flag), each a copy of its record's identifiers: resolve standardised, keyed, linked
# and clustered them all, a flag could bridge two CRM records sharing a phone, and the golden
# record counted a record's own flag as evidence that its e-mail and phone are in use
# (`verified_first`), which only an order, survey or consent event of its own should be.
FROM_CRM_FLAGS = "method = 'crm_opt_in_flag'"
TRANSACTION_FILTERS = {"consent": f"not coalesce({FROM_CRM_FLAGS}, false)"}


def gather_sql(config: Config) -> str:
    """The identity records, unordered: every CRM record, plus one per distinct identifier
    tuple of each transaction source; with a reference when they name a CRM record
    (`ref_source`, `ref_record_id`). Transactions with no identifier at all are left out
    (anonymous)."""
    ref_source = {s.name: s.customer_source for s in config.sources if s.customer_source}
    cases = " ".join(f"when '{src}' then '{ref}'" for src, ref in ref_source.items())
    config_ref = f"case source {cases} end" if cases else "null"
    transactions = " union all ".join(
        f"""
        select '{kind}', source, record_key, null, null, null, any_value(email),
               any_value(phone), any_value(loyalty_id), null, null, null, null, null,
               max({time_col}), any_value({ref_sql or config_ref}), any_value(customer_record_id),
               count(*), min({time_col})
        from {table}
        where record_key is not null and {TRANSACTION_FILTERS.get(kind, "true")}
        group by source, record_key
        """
        for kind, (table, _, time_col, ref_sql) in TRANSACTIONS.items()
    )
    return f"""
        select 'customer' as record_kind, source, source_record_id,
               first_name, last_name, full_name, email, phone, loyalty_id, birth_date, postcode,
               city, country, phone_region, coalesce(updated_at, created_at) as observed_at,
               null::varchar as ref_source, null::varchar as ref_record_id,
               1 as transactions, coalesce(created_at, updated_at) as first_observed_at
        from stg_customers
        union all
        {transactions}
        """


def crosswalk_parts() -> dict[str, str]:
    """Per record kind, the select of its customer_xref rows (source, source_record_id,
    customer_id, match_rule): every CRM record, and every transaction with an identifier."""
    parts = {
        "customer": """
            select source, source_record_id, customer_id, match_rule
            from identity_records where record_kind = 'customer'
            """
    }
    for kind, (table, id_col, _, _) in TRANSACTIONS.items():
        parts[kind] = f"""
            select t.source, t.{id_col} as source_record_id, ir.customer_id, ir.match_rule
            from {table} as t
            inner join identity_records as ir
                on ir.record_kind = '{kind}'
                and ir.source = t.source
                and ir.source_record_id = t.record_key
            where {TRANSACTION_FILTERS.get(kind, "true")}
            """
    parts["consent"] += f"""
            union all
            select t.source, t.consent_id, ir.customer_id, 'customer_record_id'
            from stg_consents as t
            inner join identity_records as ir
                on ir.record_kind = 'customer'
                and ir.source = t.customer_source
                and ir.source_record_id = t.customer_record_id
            where {FROM_CRM_FLAGS}
            """
    return parts


def write_crosswalk(con: duckdb.DuckDBPyConnection, run_id: str, keyed: bool = False) -> None:
    """customer_xref: every CRM record and every transaction with an identifier → customer.

    By key (`keyed_writes`) when tonight's identity records were written so (`keyed`) and
    staging brought the orders up to date by key; the orders whose customer changed are then
    logged as customer_xref's changes, so that the core `orders` model is updated for them
    only (`models.Incremental`, ``after``). Otherwise the table is written whole and `orders`
    is rebuilt.

    Why by identity record: every order maps to its customer through the record of its
    identifiers, and a 1 % night moves few records, while comparing the crosswalk's ten million
    order rows with last night's would cost as much as rebuilding `orders`. Orders that are new,
    changed or gone tonight are logged by staging already.
    """
    if keyed and keyed_writes.orders_restaged_by_key(con, run_id):
        keyed_writes.write_crosswalk_by_key(con, run_id, crosswalk_parts(), staged_orders())
        keyed_writes.log_order_moves(con, run_id)
        return
    parts = [
        f"select *, '{kind}' as record_kind from ({sql})" for kind, sql in crosswalk_parts().items()
    ]
    con.execute(
        "create or replace table customer_xref as "
        "select source, source_record_id, record_kind, customer_id, match_rule, "
        f"$run_id as run_id from ({' union all '.join(parts)})",
        {"run_id": run_id},
    )
    save_state(con, "customer_xref", "", run_id, updated=False)


def staged_orders() -> str:
    """SQL: the staged orders with their identity-record key and ``source_record_id``."""
    return "select *, order_id as source_record_id from stg_orders"


def link_pairs(records: pd.DataFrame) -> pd.DataFrame:
    """Deterministic edges (left, right, rule) that involve transaction records.

    Records sharing a key are linked as a star to one centre — a customer record when the group
    has one — which gives the same components as all pairs at linear cost. Two customer records
    are never linked here: whether two CRM rows are one person is the probabilistic matcher's
    call (a shared household email must not merge two people).
    """
    edges = []
    position = np.arange(len(records))
    is_crm = (records["record_kind"] == "customer").to_numpy()
    if is_crm.all():  # CRM records only (`ccv resolve`): no transaction to link
        empty = np.zeros(0, dtype=np.int64)
        return pd.DataFrame({"left": empty, "right": empty, "rule": np.array([], dtype=object)})
    for column, rule in LINK_KEYS.items():
        # integer codes in key order stand in for the keys (no Python strings handled)
        codes, _ = pd.factorize(records[column], sort=True)
        keyed = codes >= 0
        key, pos, crm = codes[keyed], position[keyed], is_crm[keyed]
        # by key; a key's CRM records first; by position
        order = lex_order(key, np.where(crm, 0, len(records)) + pos, 2 * len(records))
        key, pos, crm = key[order], pos[order], crm[order]
        starts = np.ones(len(key), dtype=bool)
        starts[1:] = key[1:] != key[:-1]
        centre = pos[starts][np.cumsum(starts) - 1]
        star = (pos != centre) & ~(crm & is_crm[centre])
        edges.append(pd.DataFrame({"left": centre[star], "right": pos[star], "rule": rule}))
    # transactions that name their CRM record
    refs = np.flatnonzero(records["ref_record_id"].notna().to_numpy())
    if len(refs):
        crm = np.flatnonzero(is_crm)
        named = _named_records(records, crm, refs)
        found = named >= 0
        edges.append(
            pd.DataFrame(
                {"left": crm[named[found]], "right": refs[found], "rule": "customer_record_id"}
            )
        )
    return pd.concat(edges, ignore_index=True).astype({"left": "int64", "right": "int64"})


def _named_records(records: pd.DataFrame, crm: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """For each of the rows `refs`, the index into `crm` (rows of CRM records) of the record
    its (``ref_source``, ``ref_record_id``) names, or -1.

    By Arrow's hash lookup of "source<US>record id" texts (source names hold no control
    character, and (source, record id) is unique among CRM records): factorising both columns
    over millions of rows in pandas cost ~2.5 s at a million customers."""

    def keys(rows: np.ndarray, source: str, record_id: str) -> pa.Array:
        parts = [
            pa.array(records[c].iloc[rows], type=pa.large_string()) for c in (source, record_id)
        ]
        return pc.binary_join_element_wise(*parts, pa.scalar("\x1f", pa.large_string()))

    crm_keys = keys(crm, "source", "source_record_id")
    at = pc.index_in(keys(refs, "ref_source", "ref_record_id"), value_set=crm_keys)
    return pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def resolve(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    run_id: str,
    now: dt.datetime,
    mapper: Mapper = LOCAL,
) -> ResolveResult:
    """Cluster identity records into customers with stable ids; write the identity tables.

    `mapper` runs the partitioned comparison work (`partitions.py`), e.g. on a Dask cluster.
    """
    ensure_identity_tables(con)
    identity = config.identity
    signature = identity_signature(config)
    # decided before `link_and_write` brings the state up to tonight
    delta = identity.incremental and state_is_current(con, signature)
    digest = unchanged.inputs_digest(con, config)
    if (
        delta
        and digest == unchanged.last_digest(con)
        and unchanged.staged_by_key_unchanged(con, run_id)
    ):
        return _unchanged_night(con, run_id, signature)
    # tonight's identity tables can be written by key: last night's are there, and current
    keyed = delta and has_last_records(con)
    customers, events, work, evidence = link_and_write(
        con, config, run_id, now, mapper, delta, keyed, signature=signature
    )
    # the frames of the records are gone by now: the evidence's and the crosswalk's joins and
    # the golden records are DuckDB's work alone
    release_freed_memory()
    write_evidence(con, evidence, run_id)
    del evidence
    write_crosswalk(con, run_id, keyed)
    keyed_writes.drop_moves(con)
    _phase("golden records")
    build_golden(con, identity.survivorship, incremental=delta, run_id=run_id)
    unchanged.remember(con, digest, run_id)
    records, anonymous = _record_counts(con)
    advance("resolve", len(PHASES), len(PHASES))
    return ResolveResult(
        records=records, customers=customers, anonymous_records=anonymous, events=events, work=work
    )


FRAMES_SHARE = 4
"""While the night's frames are alive, DuckDB gets 1/FRAMES_SHARE of `[warehouse] memory_limit`,"""
FRAMES_FLOOR = 1e9
"""but no less than this many bytes (nor more than the limit itself): reading a million
customers' candidate pairs back from DuckDB needs a few hundred MB."""
_UNIT_BYTES = {
    f"{p}{b}": base**i for i, p in enumerate("KMGT", 1) for b, base in (("B", 1000), ("iB", 1024))
}


def frames_memory_limit(memory_limit: str) -> str:
    """A quarter of a `[warehouse] memory_limit`, at least `FRAMES_FLOOR` ("4GB" -> "1GB",
    "2GB" -> "1GB", "500MB" -> "500MB"); a share of RAM stays a share ("25%" -> "6.25%")."""
    number, unit = MEMORY_SIZE.fullmatch(memory_limit).groups()
    if unit == "%":
        return f"{float(number) / FRAMES_SHARE:g}%"
    limit = float(number) * _UNIT_BYTES[unit]
    return f"{int(min(limit, max(limit / FRAMES_SHARE, FRAMES_FLOOR)))}B"


@contextlib.contextmanager
def duckdb_beside_frames(con: duckdb.DuckDBPyConnection, memory_limit: str) -> Iterator[None]:
    """Lower DuckDB's memory limit to `frames_memory_limit(memory_limit)` while
    `link_and_write` holds the night's pandas frames, and restore it after.

    Why: DuckDB keeps the blocks it read cached up to its limit, and the frames share its
    process. At a million customers DuckDB held 1.2–1.6 GB beside ~4 GB of frames in that part
    of the night; at a quarter of the limit it holds ~0.95 GB. The SQL-heavy steps after it
    (the evidence, the crosswalk, the golden record) run with the full limit again; the
    ordered insert of the gathered records before it cannot (at 1 GB it runs out of memory
    at a million customers), so standardising runs with the full limit too.
    """
    con.execute(f"set memory_limit = '{frames_memory_limit(memory_limit)}'")
    try:
        yield
    finally:
        con.execute(f"set memory_limit = '{memory_limit}'")


def _record_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Source records in the crosswalk, and transactions left out of it (no identifier)."""
    ((records, anonymous),) = con.execute(
        f"""
        select (select count(*) from customer_xref),
               {" + ".join(f"(select count(*) from {t})" for t, *_ in TRANSACTIONS.values())}
               - (select count(*) from customer_xref where record_kind <> 'customer')
        """
    ).fetchall()
    return records, anonymous


def _unchanged_night(con: duckdb.DuckDBPyConnection, run_id: str, signature: str) -> ResolveResult:
    """Keep last night's resolution: the identity inputs did not change (see `unchanged`)."""
    unchanged.carry_over(con, run_id)
    ((records, pairs),) = con.execute(
        "select records, candidate_pairs from identity_runs order by run_id desc limit 1"
    ).fetchall()
    work = Work(records, 0, 0, pairs, 0, "unchanged", signature)
    record_work(con, run_id, work)
    ((customers,),) = con.execute(
        "select count(distinct customer_id) from identity_records"
    ).fetchall()
    crosswalk, anonymous = _record_counts(con)
    advance("resolve", len(PHASES), len(PHASES))
    return ResolveResult(crosswalk, customers, anonymous, {}, work)


def link_and_write(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    run_id: str,
    now: dt.datetime,
    mapper: Mapper = LOCAL,
    delta: bool = False,
    keyed: bool = False,
    *,
    signature: str,
) -> tuple[int, dict[str, int], Work, Evidence]:
    """The pandas part of `resolve`: standardise, link, cluster, assign stable ids, and write
    identity_records. Returns the number of customers, the id events by type, the night's work
    and the evidence (`resolve` writes match_evidence and customer_xref from them).

    `delta`: the persisted state is current (see `incremental.state_is_current`) and the night
    may build on it; otherwise it is dropped and everything is computed afresh. `keyed`:
    identity_records is written by key (`keyed_writes`; needs `delta` and last night's table).
    `signature`: the state's stamp (`identity_signature`), stored with the night's work.

    Why a function of its own: its frames (millions of identity records, their links) are
    released when it returns, before the crosswalk's and the golden records' SQL need the memory.
    """
    identity = config.identity
    if not delta:
        drop_state(con)  # everything is new tonight: standardised, compared and estimated
    _phase("standardise")
    # the night's new standardised records are written to identity_std beside the linking
    # (nothing reads that table again tonight)
    around = (
        Around(identity.max_block_size, default_birth_dates)
        if keyed and builds_on_clusters(con, identity)
        else None
    )
    with writes_beside(con) as write:
        state = refresh_records(
            con,
            gather_sql(config),
            lambda records: standardize_rows(records, identity),
            blank_default_dates,
            write=write,
            around=around,
        )
        with duckdb_beside_frames(con, config.warehouse.memory_limit):
            return _link_cluster_write(con, config, run_id, now, mapper, state, signature, keyed)


def _link_cluster_write(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    run_id: str,
    now: dt.datetime,
    mapper: Mapper,
    state: RecordState,
    signature: str,
    keyed: bool,
) -> tuple[int, dict[str, int], Work, Evidence]:
    """`link_and_write` once the night's records are standardised (`state`)."""
    identity = config.identity
    std = state.std
    _phase("block, compare, score")
    night_links, choice, work = incremental_links(
        con,
        state,
        identity.match_probability,
        identity.max_block_size,
        identity.min_records_to_estimate,
        identity.reestimate_growth if identity.incremental else None,  # None: estimate
        run_id,
        mapper,
    )
    work = replace(work, state_signature=signature)
    # the block key hashes served the candidate pairs only (~0.3 GB at a million customers)
    for column in [c for c in std.columns if c.startswith("bk_")]:
        del std[column]
    _phase("cluster")
    clustered, in_scope, matched = _cluster(con, std, state, night_links, choice, identity, keyed)
    del night_links
    std["cluster"] = clustered.cluster
    # how the record joined its customer: a deterministic key, or "probabilistic" (the blocking
    # rules and field weights of such links are in match_evidence)
    std["match_rule"] = np.asarray(RULE_LABELS, dtype=object)[clustered.rule]
    edges = clustered.edges
    del clustered
    work = replace(
        work,
        reclustered=len(std) if in_scope is None else int(in_scope.sum()),
        records_read=len(std),
    )
    del std["ref_source"], std["ref_record_id"]  # read by `link_pairs` only
    _phase("stable ids")
    last = last_records(
        con,
        std,
        keyed_writes.COMPARED if keyed else (),
        gone_keys=None if state.hood is None else "_gone_keys",
    )
    assignment = assign_known(
        std["cluster"].to_numpy(),
        last.customers,
        lambda rows: std["source"].iloc[rows] + ":" + std["source_record_id"].iloc[rows],
        id_registry(con),
        None if in_scope is None else np.flatnonzero(in_scope),
    )
    record_assignment(con, assignment, run_id, now)
    std["customer_id"] = assignment.ids["customer_id"].array  # `ids` keeps std's rows
    _phase("write tables")
    changes = (
        keyed_writes.RecordChanges.of(last, state.dirty, pa.array(std["customer_id"]))
        if keyed
        else None
    )
    if in_scope is not None:  # the links of records outside it are last night's
        scope = in_scope
    elif changes is not None:
        scope = keyed_writes.evidence_scope(
            con, std, changes, {c: RENAMED.get(c, c) for c in LINK_KEYS}
        )
    else:
        scope = None
    keyed_writes.write_identity_records(
        con, lambda rows: identity_columns(std, rows), changes, run_id
    )
    record_work(con, run_id, work)
    events = assignment.events["event_type"].value_counts().to_dict()
    if state.hood is None:
        # one id per cluster and no id for two: counting the integer labels counts customers
        customers = int(np.count_nonzero(np.bincount(std["cluster"].to_numpy(), minlength=1)))
    else:  # the frame holds a neighbourhood: the customers are counted where they all are
        ((customers,),) = con.execute(
            "select count(distinct customer_id) from identity_records"
        ).fetchall()
    return (
        int(customers),
        {k: int(v) for k, v in events.items()},
        work,
        Evidence.of(std, edges, matched, choice, scope, scoped=in_scope is not None),
    )


def _cluster(
    con: duckdb.DuckDBPyConnection,
    std: pd.DataFrame,
    state: RecordState,
    night_links: NightLinks,
    choice: ParamsChoice,
    identity: IdentityConfig,
    keyed: bool,
) -> tuple[scoped.Clustered, np.ndarray | None, MatchResult]:
    """Tonight's clusters, the records re-clustered (None: all of them) and the links they
    rest on: only the scope of tonight's changes, and its links, when last night's clusters
    can be built on (a by-key night scoring with the frozen term frequencies of reused
    parameters, see `scoped`)."""
    record_no = std["record_no"].to_numpy(dtype=np.int64)
    stale = None if state.hood is None else state.stale["record_no"].to_numpy(dtype=np.int64)
    last = (
        scoped.last_clusters(con, record_no, state.dirty, stale)
        if keyed and choice.tf_frozen
        else None
    )
    if last is None and state.hood is not None:
        raise RuntimeError("a neighbourhood night found no last clusters to build on")
    if last is None:
        matched = night_links.all()
        night_links.release()
        labels, edges, components = cluster_links(std, matched, identity)
        clustered = scoped.Clustered(
            scoped.smallest(labels, record_no),
            scoped.smallest(components, record_no),
            match_rule_codes(len(std), edges),
            edges,
        )
        scoped.save_clusters(con, record_no, clustered, None, np.zeros(0))
        return clustered, None, matched
    in_scope = scoped.scope(std, state.dirty, night_links.touched(), last, list(LINK_KEYS))
    while True:  # the links of the scope's records; none should reach outside it
        matched = night_links.around(in_scope)
        wider = scoped.close_over_links(in_scope, matched, last)
        if np.array_equal(wider, in_scope):
            break
        in_scope = wider
    night_links.release()
    clustered = scoped.cluster_scope(
        std,
        matched,
        in_scope,
        last,
        lambda records, links: cluster_links(records, links, identity),
        match_rule_codes,
    )
    stale = state.stale["record_no"].to_numpy(dtype=np.int64)
    scoped.save_clusters(con, record_no, clustered, np.flatnonzero(in_scope), stale)
    return clustered, in_scope, matched


def builds_on_clusters(con: duckdb.DuckDBPyConnection, identity: IdentityConfig) -> bool:
    """Tonight (a keyed delta night) will reuse the stored match parameters with their frozen
    term counts, and so re-cluster only the scope of its changes (`scoped`): its frame can be
    the neighbourhood of those changes (`neighbourhood`). The same test `choose_params` and
    `term_counts` make later, on the count of tonight's CRM records (every staged one)."""
    stored = stored_params(con)
    if stored is None or identity.reestimate_growth is None:
        return False
    ((crm,),) = con.execute("select count(*) from stg_customers").fetchall()
    if crm < identity.min_records_to_estimate:
        return False
    if not within_growth(stored, crm, identity.reestimate_growth):
        return False
    return FrozenCounts.load(con, stored.run_id) is not None


def match_rule_codes(n: int, edges: pd.DataFrame) -> np.ndarray:
    """How each of the `n` records joined its customer, as a code of `RULE_LABELS`: the rule
    of the first edge (in `edges` order) whose right end it is — a deterministic key, or
    "probabilistic" — else "self".

    By edge position and rule code: grouping millions of edges' rule texts by record costs
    seconds at a million customers."""
    first = np.full(n, len(edges), dtype=np.int64)
    np.minimum.at(first, edges["right"].to_numpy(dtype=np.int64), np.arange(len(edges)))
    codes, names = pd.factorize(edges["rule"])
    position = {label: code for code, label in enumerate(RULE_LABELS)}
    label_codes = np.array(
        [position.get(name, position["probabilistic"]) for name in names] + [position["self"]],
        dtype=np.int8,
    )
    has_edge = first < len(edges)
    out = np.full(n, len(names), dtype=np.int64)  # "self"
    out[has_edge] = codes[first[has_edge]]
    return label_codes[out]


@dataclass(frozen=True)
class Evidence:
    """What match_evidence, match_params and oversized_blocks are written from.

    Why a value of its own: the links and the records' ids travel to DuckDB as compact Arrow
    tables (positions and numbers; three text columns per record), made while the night's
    frames exist, so that the join runs after those frames are released (`resolve`) instead
    of on top of them: at a million customers that join was the stage's memory peak.
    """

    links: pa.Table  # EDGE_COLUMNS (left, right: record positions) and link (see `cluster_links`)
    fields: pa.Table  # link and the *_level / *_weight evidence of the probabilistic links
    records: pa.Table  # position, source, source_record_id, customer_id
    params: Params | None
    candidate_pairs: int
    oversized_blocks: pd.DataFrame  # rule, key, size
    choice: ParamsChoice
    rewritten: pa.Table | None = None
    """by key (`keyed_writes.evidence_scope`): the records (source, source_record_id) whose
    rows are rewritten; `links` holds their links and the probabilistic ones. None: whole."""
    scoped: bool = False
    """`rewritten` is the scope of a night that re-clustered only it (`scoped`): the other
    records' links, probabilistic ones too, are last night's and stay"""

    @staticmethod
    def of(
        std: pd.DataFrame,
        edges: pd.DataFrame,
        matched: MatchResult,
        choice: ParamsChoice,
        scope: np.ndarray | None = None,
        scoped: bool = False,
    ) -> Evidence:
        fields = [c for c in matched.links.columns if c.endswith(("_level", "_weight"))]
        link = edges["link"].to_numpy()
        used = link[link >= 0]
        records = std[["source", "source_record_id", "customer_id"]].assign(
            position=np.arange(len(std), dtype=np.int64)
        )
        rewritten = None
        if scope is not None:
            left, right = edges["left"].to_numpy(), edges["right"].to_numpy()
            edges = edges[scope[left] | scope[right] | (link >= 0)]
            rewritten = frame_to_arrow(std.loc[scope, ["source", "source_record_id"]])
        return Evidence(
            rewritten=rewritten,
            links=frame_to_arrow(edges[[*EDGE_COLUMNS, "link"]]),
            # only the probabilistic links' rows: no NaN columns over millions of
            # deterministic edges (the SQL join leaves those fields null)
            fields=frame_to_arrow(matched.links.iloc[used][fields].assign(link=used)),
            records=frame_to_arrow(records),
            params=matched.params,
            candidate_pairs=matched.candidate_pairs,
            oversized_blocks=matched.oversized_blocks,
            choice=choice,
            scoped=scoped,
        )


def write_evidence(con: duckdb.DuckDBPyConnection, evidence: Evidence, run_id: str) -> None:
    """match_evidence (every link a customer rests on, field by field), match_params (the m/u
    this run scored with, and the run that estimated them) and oversized_blocks (blocks
    reported instead of compared).

    The records' ids and customers are joined on in SQL, so millions of links never become
    text columns in pandas.
    """
    fields = [c for c in evidence.fields.column_names if c != "link"]
    columns = [
        "? as run_id",
        "l.customer_id",
        "l.source as left_source",
        "l.source_record_id as left_record_id",
        "r.source as right_source",
        "r.source_record_id as right_record_id",
        "e.rule",
        "e.weight as match_weight",
        "e.probability as match_probability",
        # double, as the evidence always was (a level is null on a deterministic edge)
        *(f"cast(f.{c} as double) as {c}" for c in fields),
    ]
    select = f"""
        select {", ".join(columns)}
        from _links as e
        left join _fields as f on f.link = e.link
        join _records as l on l.position = e.left
        join _records as r on r.position = e.right
        """
    tables = {"_links": evidence.links, "_fields": evidence.fields, "_records": evidence.records}
    if evidence.rewritten is not None:
        tables["_rewritten"] = evidence.rewritten
    for name, table in tables.items():
        con.register(name, table)
    try:
        if evidence.rewritten is None:
            con.execute(f"create or replace table match_evidence as {select}", [run_id])
        else:
            _delete_rewritten_evidence(con, probabilistic=not evidence.scoped)
            con.execute(f"insert into match_evidence by name {select}", [run_id])
    finally:
        for name in tables:
            con.unregister(name)
    params = evidence.params.to_json() if evidence.params else None
    con.execute(
        "create or replace table match_params (run_id varchar, candidate_pairs bigint, "
        "params json, params_source varchar, params_run_id varchar, params_records bigint)"
    )
    con.execute(
        "insert into match_params values (?, ?, ?, ?, ?, ?)",
        [
            run_id,
            evidence.candidate_pairs,
            params,
            evidence.choice.source,
            evidence.choice.run_id,
            evidence.choice.records,
        ],
    )
    con.execute(
        "create or replace table oversized_blocks (run_id varchar, rule varchar, "
        "key varchar, size bigint)"
    )
    if len(evidence.oversized_blocks):
        con.register("_oversized", evidence.oversized_blocks)
        con.execute(
            "insert into oversized_blocks select ?, rule, key, size from _oversized", [run_id]
        )
        con.unregister("_oversized")


def _delete_rewritten_evidence(con: duckdb.DuckDBPyConnection, probabilistic: bool) -> None:
    """Delete the evidence rows a by-key night rewrites: the links of the records in
    ``_rewritten`` and of gone ones (``_gone_records``), and (`probabilistic`) every
    probabilistic link."""
    con.execute(
        "create or replace temp table _rewritten_records as "
        "select source, source_record_id from _rewritten "
        "union all select source, source_record_id from _gone_records"
    )
    for side in ("left", "right"):
        con.execute(
            f"delete from match_evidence e using _rewritten_records t "
            f"where e.{side}_source = t.source and e.{side}_record_id = t.source_record_id"
        )
    if probabilistic:
        con.execute(
            "delete from match_evidence where rule not in (select unnest($rules))",
            {"rules": list(LINK_WEIGHTS)},
        )
    con.execute("drop table _rewritten_records")


EDGE_COLUMNS = ("left", "right", "rule", "weight", "probability")
"""What a link is to clustering and to `match_evidence` besides its field-by-field evidence."""


def link_and_cluster(
    std: pd.DataFrame, identity: IdentityConfig, mapper: Mapper = LOCAL
) -> tuple[np.ndarray, pd.DataFrame, MatchResult]:
    """Cluster label per standardised record; the links the clusters rest on; the match run.

    Links are the deterministic edges of transactions plus the probabilistic links between
    customer records (see matching.py); clustering applies the integrity guards.
    """
    customers = np.flatnonzero((std["record_kind"] == "customer").to_numpy())
    matched = probabilistic_links(
        std,
        customers,
        identity.match_probability,
        identity.max_block_size,
        identity.min_records_to_estimate,
        mapper=mapper,
    )
    labels, edges, _ = cluster_links(std, matched, identity)
    return labels, edges, matched


def cluster_links(
    std: pd.DataFrame, matched: MatchResult, identity: IdentityConfig
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Cluster label per record, the links the clusters rest on, and the connected component
    of every record over all links (used or refused: what a cluster can ever draw from; see
    `scoped`): the deterministic edges of transactions plus the probabilistic links of
    `matched`, under the integrity guards.

    The links are `EDGE_COLUMNS` and ``link``: the row of a probabilistic link in
    `matched.links` (-1 for a deterministic edge)."""
    deterministic = link_pairs(std)
    # by code: mapping the text of every edge's rule costs a second per million edges
    codes, rules = pd.factorize(deterministic["rule"])
    weights = np.asarray([LINK_WEIGHTS[r] for r in rules], dtype=float)
    deterministic["weight"] = weights[codes]
    deterministic["probability"] = 1.0
    deterministic["link"] = -1
    # narrow: the links' field-by-field evidence stays in `matched.links` (row `link`) instead
    # of being widened with NaN over millions of deterministic edges (`Evidence.of` joins it)
    probabilistic = matched.links[list(EDGE_COLUMNS)].assign(link=np.arange(len(matched.links)))
    edges = pd.concat([deterministic, probabilistic], ignore_index=True)
    del deterministic, probabilistic
    strong = probability_to_weight(identity.strong_match_probability)
    crm = (std["record_kind"] == "customer").to_numpy()
    labels, used = cluster(len(std), edges, guards_for(std, identity), strong=strong, crm=crm)
    # components over all links = clusters joined by the links clustering left unused (the
    # used ones lie inside a cluster): a graph of ~1M clusters and few links instead of
    # ~3.7M records and ~10M links at a million customers
    names, cluster_of = np.unique(labels, return_inverse=True)
    unused = ~used
    joined = connected_components(
        len(names),
        cluster_of[edges["left"].to_numpy(dtype=np.int64)[unused]],
        cluster_of[edges["right"].to_numpy(dtype=np.int64)[unused]],
    )
    return labels, edges[used].reset_index(drop=True), joined[cluster_of]


def guards_for(std: pd.DataFrame, identity: IdentityConfig) -> Guards:
    """The integrity guards of `[identity.guards]` over the standardised records."""
    births = date_texts(std["std_birth_date"])
    return Guards(
        loyalty_ids=std["std_loyalty_id"].to_numpy(dtype=object, na_value=None),
        birth_dates=births,
        check_loyalty=identity.guards.distinct_loyalty_ids,
        max_birth_gap_days=identity.guards.max_birth_gap_days,
    )


def date_texts(dates: pd.Series) -> np.ndarray:
    """`dates.astype("string")` as an object array with None for missing: each distinct date is
    formatted once (a few tens of thousands of birth dates among millions of records)."""
    codes, uniques = pd.factorize(dates)
    texts = np.append(pd.Series(uniques).astype("string").to_numpy(dtype=object), None)
    return texts[codes]  # code -1 (missing) takes the appended None


PLACEHOLDER_BIRTH_DATES = ("1900-01-01", "1901-01-01", "0001-01-01", "9999-12-31")


def blank_default_dates(birth_dates: pd.Series, min_records: int = 20) -> pd.Series:
    """Blank birth dates that are system defaults rather than birthdays.

    Real birthdays spread over ~26,000 days, so no date should hold more than a few hundredths of
    a percent of people; a date held by at least `min_records` records and 0.2 % of them (a
    form's default, a migration's filler) says nothing about identity, and matching on it would
    link strangers. Known fillers such as 1900-01-01 are always blanked.
    """
    codes, uniques = pd.factorize(birth_dates)  # counted and formatted per distinct date
    texts = pd.Series(uniques).astype("string").to_numpy(dtype=object)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    defaults = np.isin(texts, default_birth_dates(texts, counts, min_records))
    return birth_dates.mask(np.append(defaults, False)[codes])  # code -1 (missing): False


def default_birth_dates(texts: np.ndarray, counts: np.ndarray, min_records: int = 20) -> np.ndarray:
    """Of the distinct birth dates `texts` (``YYYY-MM-DD``), held by `counts` records each,
    those `blank_default_dates` blanks: the rule on a population's counts alone (a
    neighbourhood night counts its records in SQL, `incremental.refresh_records`)."""
    threshold = max(min_records, 0.002 * int(np.sum(counts)))
    return texts[(counts >= threshold) | np.isin(texts, PLACEHOLDER_BIRTH_DATES)]


def standardize(records: pd.DataFrame, identity: IdentityConfig) -> pd.DataFrame:
    """Comparison columns for every record, plus display first/last names (split if needed)."""
    std = standardize_rows(records, identity)
    std["std_birth_date"] = blank_default_dates(std["std_birth_date"])
    return std


def standardize_rows(records: pd.DataFrame, identity: IdentityConfig) -> pd.DataFrame:
    """`standardize` without the population step (default birth dates are not blanked): each
    record's columns depend on that record alone, so they can be kept from night to night."""
    missing = [c for c in ("first_name", "last_name", "full_name") if c not in records]
    records = records.assign(**dict.fromkeys(missing))
    std = standardize_customers(records, default_region=identity.default_phone_region)
    if "phone_region" in records:
        # a source may declare its own region for national numbers (`phone_region`)
        for region in records["phone_region"].dropna().unique():
            if region != identity.default_phone_region:
                rows = records["phone_region"] == region
                std.loc[rows, "std_phone"] = normalize_phone(records.loc[rows, "phone"], region)
    split = split_full_name(std["full_name"])
    std["first_name"] = clean_text(std["first_name"]).fillna(split["first_name"])
    std["last_name"] = clean_text(std["last_name"]).fillna(split["last_name"])
    return std


RENAMED = {
    "std_email": "email",
    "std_phone": "phone",
    "std_loyalty_id": "loyalty_id",
    "std_birth_date": "birth_date",
    "std_postcode": "postcode",
}


def identity_columns(std: pd.DataFrame, rows: np.ndarray | None = None) -> pd.DataFrame:
    """identity_records (without its ``run_id``): display values, normalised identifiers and
    comparison columns; of the records at positions `rows` (None: all)."""
    comparison = [c for c in std.columns if c.startswith("std_") and c not in RENAMED]
    columns = [
        "record_kind",
        "source",
        "source_record_id",
        "customer_id",
        "match_rule",
        "transactions",
        "observed_at",
        "first_observed_at",
        "first_name",
        "last_name",
        *RENAMED,
        *comparison,
    ]
    chosen = std[columns] if rows is None else std.iloc[rows, std.columns.get_indexer(columns)]
    return chosen.rename(columns=RENAMED)


CODE = code_digest(
    (
        sys.modules[__name__],
        standardize_module,
        blocking,
        comparisons,
        incremental,
        scoring,
        term_counts,
        clustering,
        scoped,
        neighbourhood,
    )
)
"""The code the persisted identity state depends on (standardising, blocking, comparing;
scoring and clustering, whose results `identity_clusters` keeps, see `scoped`)."""


def identity_signature(config: Config) -> str:
    """The stamp of the persisted identity state: the settings and code it depends on (which
    CRM source each transaction source names records of decides its deterministic links; the
    thresholds and guards decide the clusters that `scoped` keeps)."""
    identity = config.identity
    references = sorted((s.name, s.customer_source) for s in config.sources if s.customer_source)
    clusters = (
        identity.match_probability,
        identity.strong_match_probability,
        identity.guards.model_dump(),
    )
    return state_signature(
        (identity.default_phone_region, identity.max_block_size, references, clusters), CODE
    )
