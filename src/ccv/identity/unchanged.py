"""A night whose identity inputs did not change keeps last night's resolution as it is.

Why: resolve is a function of the staged tables it reads (CRM records, orders, survey
responses, consent events), the identity settings and the identity code. When none of them
changed since the last resolve — a night with no new drop — its result is the last one, while
recomputing it still costs more than a minute at a million customers (gathering, re-scoring
and clustering every record). So each resolve stores a digest of its inputs (`inputs_digest`,
in `model_state` as the pseudo-model ``resolve``), and the next one with the same digest and
unchanged staged tables leaves the identity tables as they are: no event, no new id, the
tables' ``run_id`` columns still name the run that resolved them.

What counts as unchanged staged rows: a table that staging updated by key tonight without
logging a change (`STAGED_LOGGED`: such an update logs every row it deletes or inserts) holds
what it held at the last resolve — the published warehouse's staged tables are those its last
night resolved, and only staging writes them (an erasure drops the incremental state, so they
are rebuilt, and a rebuilt table makes the night resolve). A table staged whole every night
(`stg_survey_responses`) counts by its rows: a sum of row hashes, part of the digest. (Summing
the hashes of every staged table cost ~1 s a night at a million customers.) So anything that
changes the staged rows — a new, replaced, rejected or moved file, a changed staging model —
makes the night resolve; so does any change of `[identity]` settings, of the sources' CRM
references, or of the code under `ccv/identity` (and an erasure, or an upgrade of a library
the state is stamped with, see `incremental.IDENTITY_LIBRARIES`: the state is then
recomputed). A re-delivered order that stages to the same row is a logged change: such a
night resolves, by key like any other.
"""

from __future__ import annotations

import hashlib
import sys

import duckdb

from ccv.config import Config
from ccv.identity import golden, standardize
from ccv.identity.incremental import code_digest
from ccv.warehouse.models import changed_nothing, log_changes, save_state, stored_digest

STAGED = ("stg_customers", "stg_orders", "stg_survey_responses", "stg_consents")
"""The staged tables resolve reads."""

STAGED_LOGGED = ("stg_customers", "stg_orders", "stg_consents")
"""Those staging updates by key with a change column (``changes`` in their headers)."""

STATE = "resolve"
"""The `model_state` row that keeps the digest of the last resolve's inputs."""

CARRIED = ("customer_xref", *golden.LOGGED)
"""Tables whose changes downstream models read (`models.Incremental`): the crosswalk's (logged
by resolve) and those the golden record logs; none on such a night."""

CODE = code_digest((sys.modules["ccv.identity"], standardize))
"""Every module of `ccv.identity` (a package counts with all its modules)."""


def inputs_digest(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """A digest of what resolve reads but `staged_by_key_unchanged` does not cover: the rows of
    the tables not in `STAGED_LOGGED`, settings and code."""
    whole = [t for t in STAGED if t not in STAGED_LOGGED]
    sums = ", ".join(f"(select sum(hash(t)::hugeint) from {table} as t)" for table in whole)
    staged = con.execute(f"select {sums}").fetchall()[0]
    references = sorted((s.name, s.customer_source) for s in config.sources)
    text = f"{staged!r}|{config.identity!r}|{references!r}|{CODE}"
    return hashlib.md5(text.encode()).hexdigest()


def staged_by_key_unchanged(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Staging updated every `STAGED_LOGGED` table by key in `run_id` and changed no row."""
    return all(changed_nothing(con, table, run_id) for table in STAGED_LOGGED)


def last_digest(con: duckdb.DuckDBPyConnection) -> str | None:
    """The inputs digest the last resolve stored, if any."""
    return stored_digest(con, STATE)


def remember(con: duckdb.DuckDBPyConnection, digest: str, run_id: str) -> None:
    """Store tonight's inputs digest for the next night's comparison."""
    save_state(con, STATE, digest, run_id, updated=False)


def carry_over(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Tell downstream incremental models that tonight changed nothing in the identity tables:
    each is "updated" by this run with no changed key, so they are updated (by nothing) rather
    than rebuilt."""
    for table in CARRIED:
        log_changes(con, table, run_id, "select null::varchar where false")
        save_state(con, table, "", run_id, updated=True)
