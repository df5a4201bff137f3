"""A night whose identity inputs did not change keeps last night's resolution as it is.

Why: resolve is a function of the staged tables it reads (CRM records, orders, survey
responses, consent events), the identity settings and the identity code. When none of them
changed since the last resolve — a night with no new drop, a re-run after a failed publish —
its result is the last one, while recomputing it still costs more than a minute at a million
customers (gathering, re-scoring and clustering every record). So each resolve stores a digest of
its inputs (`inputs_digest`, in `model_state` as the pseudo-model ``resolve``), and the next one
with the same digest leaves the identity tables as they are: no event, no new id, the tables'
``run_id`` columns still name the run that resolved them.

The digest is over the staged tables' whole rows (a sum of row hashes: ~1 s at a million
customers), so anything that changes them — a new, replaced, rejected or moved file, a changed
staging model — makes the night resolve; so does any change of `[identity]` settings, of the
sources' CRM references, or of the code under `ccv/identity` (and an erasure, which drops the
incremental state, or an upgrade of a library the state is stamped with, see
`incremental.IDENTITY_LIBRARIES`: the state is then recomputed).
"""

from __future__ import annotations

import hashlib
import sys

import duckdb

from ccv.config import Config
from ccv.identity import golden, standardize
from ccv.identity.incremental import code_digest
from ccv.warehouse.models import log_changes, save_state, stored_digest

STAGED = ("stg_customers", "stg_orders", "stg_survey_responses", "stg_consents")
"""The staged tables resolve reads."""

STATE = "resolve"
"""The `model_state` row that keeps the digest of the last resolve's inputs."""

CARRIED = ("customer_xref", *golden.LOGGED)
"""Tables whose changes downstream models read (`models.Incremental`): the crosswalk's (logged
by resolve) and those the golden record logs; none on such a night."""

CODE = code_digest((sys.modules["ccv.identity"], standardize))
"""Every module of `ccv.identity` (a package counts with all its modules)."""


def inputs_digest(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """A digest of everything resolve reads: staged rows, settings and code."""
    sums = ", ".join(f"(select sum(hash(t)::hugeint) from {table} as t)" for table in STAGED)
    staged = con.execute(f"select {sums}").fetchall()[0]
    references = sorted((s.name, s.customer_source) for s in config.sources)
    text = f"{staged!r}|{config.identity!r}|{references!r}|{CODE}"
    return hashlib.md5(text.encode()).hexdigest()


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
