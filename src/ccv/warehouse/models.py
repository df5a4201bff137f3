"""Build the warehouse from the SQL files in `sql/`: one file per table, layered.

Every `sql/<layer>/<table>.sql` holds one `select` statement; the file name is the table name
(as in dbt). Layers build in order staging → core → marts. Inside a layer, a model that names
another model of the same layer builds after it, so files need no explicit `ref()`.

Checks live in `sql/checks/<layer>/<check>.sql`: each is a query returning the offending rows,
so zero rows means the check passed. They run right after their layer is built.

A model whose rows for a key depend only on its inputs' rows with that key can say so in a
header line, and is then brought up to date instead of rebuilt when the caller names the run
(`run_id`) that changed its inputs:

    -- incremental: key = source, order_id; input = raw_orders; changes = order_key
    -- incremental: key = order_key; after = stg_orders, customer_xref

(see `Incremental`). Why: on a night that adds one percent of the orders, rebuilding the staged
and core orders reads, ranks, joins and — costliest — writes and compresses all ten million of
them again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from ccv.progress import advance

LAYERS: tuple[str, ...] = ("staging", "core", "marts")
SQL_DIR = Path(__file__).resolve().parents[3] / "sql"


@dataclass(frozen=True)
class Incremental:
    """A model kept up to date by key (its `-- incremental:` header, `name = values` pairs
    separated by `;`):

    * ``key``: the columns whose rows are recomputed together;
    * ``input = <raw table>`` (staging): the keys a night *touched* are those of the input rows
      its ingest loaded (`run_id`) and those of the model rows that came from a file it replaced
      or rejected (their raw rows were deleted). The input and the model carry the key columns
      and the lineage columns `run_id` (input), `source` and `source_file` (both). Equal to a
      rebuild for a model where, per key, removing an input row that is not the latest delivery
      does not change the result (the staging models keep the latest version of each record);
    * ``after = <tables>`` (core): the keys touched are those the named upstream tables logged
      as changed tonight (`model_changes`); the model's only key is the upstream's change
      column. Updated only when every upstream was itself updated tonight (not rebuilt);
    * ``changes = <column>``: log this column of every touched row, before and after, as the
      model's changes for downstream models;
    * ``touched = <name>``: with ``input``, instead of the keys of every input row the run
      loaded, the keys the query `sql/touched/<name>.sql` selects (given ``$run_id``, before
      the model changes) — for an input that re-delivers what the model holds already, as a
      snapshot source does every night: the rows whose values changed, and whatever else
      the query knows changes the model's rows (see `sql/touched/stg_customers.sql`). With
      ``after`` as well, the query may read those models' logged changes (see
      `sql/touched/stg_consents.sql`), and the model updates only when they were updated.
      With ``after`` alone, the query replaces the upstreams' logged changes: for a model
      whose key is not their change column, or whose rows change with more than its inputs
      (`sql/touched/customer_order_stats.sql`: customers by the order keys `order_lines`
      logged, and those whose orders the moving as-of date lets in or out).

    The model's rows of touched keys are deleted and recomputed from its inputs filtered to
    those keys (a temp view of each input's name shadows the table while the model's SQL runs,
    unchanged; an input without the key columns is read whole, and only the touched keys'
    rows of the result are inserted); the other rows are kept. Ingest and resolve are the only
    writers between two builds; `ccv forget` deletes rows by person instead, so it drops the state
    (`forget_incremental_state`) and the next night rebuilds, as it does when the model's SQL
    changed or no state is stored.
    """

    key: tuple[str, ...]
    input: str | None = None
    after: tuple[str, ...] = ()
    changes: str | None = None
    touched: str | None = None

    @classmethod
    def parse(cls, header: str, model: str) -> Incremental:
        parts = {}
        for part in header.split(";"):
            name, _, values = part.partition("=")
            words = tuple(w.strip() for w in values.split(",") if w.strip())
            if name.strip() not in ("key", "input", "after", "changes", "touched") or not words:
                raise ValueError(f"sql model {model}: bad incremental header part {part.strip()!r}")
            parts[name.strip()] = words
        if "key" not in parts or not ("input" in parts or "after" in parts):
            raise ValueError(f"sql model {model}: incremental needs a key and input or after")
        if "input" in parts and "after" in parts and "touched" not in parts:
            raise ValueError(f"sql model {model}: incremental input with after needs touched")
        return cls(
            key=parts["key"],
            input=parts.get("input", (None,))[0],
            after=parts.get("after", ()),
            changes=parts.get("changes", (None,))[0],
            touched=parts.get("touched", (None,))[0],
        )


_INCREMENTAL = re.compile(r"^--\s*incremental:(?P<header>.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Model:
    """One SQL model: a table built by `create or replace table <name> as <sql>`."""

    name: str
    layer: str
    sql: str
    touched_sql: str = ""  # the query its `touched` header names, if any

    @property
    def incremental(self) -> Incremental | None:
        """The model's `-- incremental:` header, if it has one."""
        match = _INCREMENTAL.search(self.sql)
        return Incremental.parse(match["header"], self.name) if match else None

    @property
    def digest(self) -> str:
        """What the stored state of an incremental model was computed with."""
        return hashlib.md5((self.sql + self.touched_sql).encode()).hexdigest()


@dataclass(frozen=True)
class CheckFailure:
    """A data check that returned rows; `sample` holds up to five of them."""

    check: str
    layer: str
    row_count: int
    columns: list[str]
    sample: list[tuple]

    def __str__(self) -> str:
        rows = "\n".join(f"    {dict(zip(self.columns, row, strict=False))}" for row in self.sample)
        return f"check {self.layer}/{self.check} failed: {self.row_count} offending row(s)\n{rows}"


class DataCheckError(RuntimeError):
    """Raised when data checks find offending rows; the run must not publish."""

    def __init__(self, failures: list[CheckFailure]):
        self.failures = failures
        super().__init__("\n".join(str(f) for f in failures))


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def load_layer(layer: str, sql_dir: Path | None = None) -> list[Model]:
    """Read the models of one layer, ordered so that each follows the models it reads."""
    sql_dir = sql_dir or SQL_DIR
    models = {
        p.stem: _with_touched(Model(p.stem, layer, p.read_text(encoding="utf-8")), sql_dir)
        for p in sorted((sql_dir / layer).glob("*.sql"))
    }
    graph: dict[str, set[str]] = {}
    for name, model in models.items():
        body = _strip_comments(model.sql).lower()
        graph[name] = {
            other for other in models if other != name and re.search(rf"\b{other}\b", body)
        }
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ValueError(
            f"SQL models in sql/{layer} reference each other in a cycle: {exc.args[1]}"
        ) from None
    return [models[name] for name in order]


def _with_touched(model: Model, sql_dir: Path) -> Model:
    """`model` with the query its `touched` header names (see `Incremental`)."""
    spec = model.incremental
    if not (spec and spec.touched):
        return model
    path = sql_dir / "touched" / f"{spec.touched}.sql"
    if not path.is_file():
        raise ValueError(f"sql model {model.name}: touched query {path} not found")
    return replace(model, touched_sql=path.read_text(encoding="utf-8").strip().rstrip(";"))


def create_macros(
    con: duckdb.DuckDBPyConnection,
    sql_dir: Path | None = None,
    used_by: list[Model] | None = None,
) -> None:
    """Create the SQL macros of `sql/macros/` (one `create or replace macro` per file) that
    models share, e.g. the identity record key of a transaction: one definition where several
    models must compute the same value. Kept in the warehouse, so analysts can call them too.

    `used_by`: only the macros these models (or their touched queries) name, and the macros
    those name. Why: a table macro is bound when it is created, so it needs the tables it
    reads (`snapshot_exports` reads ingest_log), which a warehouse built from hand-made core
    tables does not have. For the same reason a macro is created after the macros it names
    (`file_ranks` after `file_key`)."""
    paths = sorted(((sql_dir or SQL_DIR) / "macros").glob("*.sql"))
    bodies = {p: _strip_comments(p.read_text(encoding="utf-8")) for p in paths}
    if used_by is not None:
        text = "\n".join(_strip_comments(m.sql + "\n" + m.touched_sql) for m in used_by)
        wanted: set[Path] = set()
        while named := {p for p in paths if re.search(rf"\b{p.stem}\b", text)} - wanted:
            wanted |= named  # and the macros these macros name
            text = "\n".join(bodies[p] for p in named)
        paths = [p for p in paths if p in wanted]
    created: set[Path] = set()
    while pending := [p for p in paths if p not in created]:
        # a macro is bound when it is created: the macros it names first
        ready = [
            p
            for p in pending
            if not any(re.search(rf"\b{q.stem}\b", bodies[p]) for q in pending if q != p)
        ]
        if not ready:
            raise ValueError(f"sql/macros: these macros name each other: {pending}")
        for path in ready:
            con.execute(bodies[path])
            created.add(path)


def build_layer(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    sql_dir: Path | None = None,
    run_id: str | None = None,
) -> list[str]:
    """Create or replace every table of `layer`; return the table names in build order.

    With `run_id` (the run whose ingest just changed the raw tables), incremental models whose
    stored state is current are updated instead (`Incremental`).
    """
    built = []
    models = load_layer(layer, sql_dir)
    create_macros(con, sql_dir, used_by=models)
    for model in models:
        advance(f"{layer} models", len(built), len(models), model.name)
        spec = model.incremental
        updated = bool(spec and run_id and _can_update(con, model, spec, run_id))
        if updated:
            _update(con, model, spec, run_id)
        else:
            _create(con, model)
        if spec:
            save_state(con, model.name, model.digest, run_id, updated)
        built.append(model.name)
    advance(f"{layer} models", len(built), len(models))
    return built


def build_models(
    con: duckdb.DuckDBPyConnection, layer: str, names: list[str], sql_dir: Path | None = None
) -> list[str]:
    """Create or replace only the named models of `layer`, in build order; no checks.

    For callers that provide the layer's other tables themselves (the marts and CLV tests build
    `purchase_days` over hand-made `orders`).
    """
    models = [m for m in load_layer(layer, sql_dir) if m.name in names]
    if missing := set(names) - {m.name for m in models}:
        raise ValueError(f"no model {', '.join(sorted(missing))} in sql/{layer}")
    create_macros(con, sql_dir, used_by=models)
    for model in models:
        _create(con, model)
    return [m.name for m in models]


def _create(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    body = model.sql.strip().rstrip(";")
    try:
        con.execute(f"create or replace table {model.name} as\n{body}\n")
    except duckdb.Error as exc:
        raise RuntimeError(f"building sql/{model.layer}/{model.name}.sql failed: {exc}") from exc


STATE_DDL = (
    # per incremental model (and per table another stage keeps incrementally, e.g. resolve's
    # customer_xref): the SQL it was last built with, by which run, and whether that run
    # updated it (true) or rebuilt it (false)
    "create table if not exists model_state (model varchar primary key, digest varchar, "
    "run_id varchar, updated boolean)",
    # the change column's values of the rows a run touched, per model (the last run's only)
    "create table if not exists model_changes (run_id varchar, model varchar, key varchar)",
)


def _ensure_state_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the state tables; a `model_state` of another shape (an older ccv's) is dropped,
    so the models rebuild once."""
    columns = con.execute(
        "select column_name from duckdb_columns() where table_name = 'model_state' "
        "and database_name = current_database() and schema_name = 'main'"
    ).fetchall()
    if columns and [c for (c,) in columns] != ["model", "digest", "run_id", "updated"]:
        con.execute("drop table model_state")
    for ddl in STATE_DDL:
        con.execute(ddl)


def _can_update(
    con: duckdb.DuckDBPyConnection, model: Model, spec: Incremental, run_id: str
) -> bool:
    """The model's table was built (or updated) by its current SQL and nothing dropped it, and
    every upstream it is updated after was itself updated (not rebuilt) by this run."""
    _ensure_state_tables(con)
    rows = con.execute(
        "select s.digest from model_state s join duckdb_tables() t "
        "on t.table_name = s.model and t.database_name = current_database() "
        "and t.schema_name = 'main' where s.model = ?",
        [model.name],
    ).fetchall()
    if rows != [(model.digest,)]:
        return False
    after = spec.after
    updated = con.execute(
        "select count(*) from model_state where model in (select unnest(?::varchar[])) "
        "and run_id = ? and updated",
        [list(after), run_id],
    ).fetchall()[0][0]
    return updated == len(after)


def stored_digest(con: duckdb.DuckDBPyConnection, model: str) -> str | None:
    """The digest `save_state` last stored for `model`, if any."""
    _ensure_state_tables(con)
    rows = con.execute("select digest from model_state where model = ?", [model]).fetchall()
    return rows[0][0] if rows else None


def save_state(
    con: duckdb.DuckDBPyConnection, model: str, digest: str, run_id: str | None, updated: bool
) -> None:
    """Record how `model` was brought up to date; a rebuild clears its logged changes."""
    _ensure_state_tables(con)
    con.execute(
        "insert or replace into model_state values (?, ?, ?, ?)", [model, digest, run_id, updated]
    )
    if not updated:
        con.execute("delete from model_changes where model = ?", [model])


def changed_nothing(con: duckdb.DuckDBPyConnection, model: str, run_id: str) -> bool:
    """`run_id` updated `model` by key and deleted or inserted no row.

    Meaningful only for a model with a change column (``changes`` in its header): an update
    logs the change column of every row it deletes or inserts, so no log means no such row.
    """
    _ensure_state_tables(con)
    ((nothing,),) = con.execute(
        "select exists (select 1 from model_state where model = $m and run_id = $r and updated) "
        "and not exists (select 1 from model_changes where model = $m and run_id = $r)",
        {"m": model, "r": run_id},
    ).fetchall()
    return bool(nothing)


def log_changes(con: duckdb.DuckDBPyConnection, model: str, run_id: str, keys_sql: str) -> None:
    """Add the change keys `keys_sql` selects to `model`'s changes of `run_id` (those of earlier
    runs are dropped: downstream models read tonight's only)."""
    _ensure_state_tables(con)
    con.execute("delete from model_changes where model = ? and run_id <> ?", [model, run_id])
    con.execute(
        f"insert into model_changes select distinct ?, ?, k from ({keys_sql}) as c(k)",
        [run_id, model],
    )


def forget_incremental_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the next build of every incremental model a full one (after deletes that ingest
    did not make, e.g. an erasure)."""
    con.execute("drop table if exists model_state")
    con.execute("drop table if exists model_changes")


def _touched_sql(model: Model, spec: Incremental, database: str) -> str:
    """The keys this run touched (see `Incremental`); `$run_id` is the run."""
    keys = ", ".join(spec.key)
    named = f"select {keys} from (\n{model.touched_sql}\n)" if model.touched_sql else None
    if spec.input:
        input_table = f'"{database}".main.{spec.input}'
        delivered = named or f"select distinct {keys} from {input_table} where run_id = $run_id"
        return f"""
            {delivered}
            union
            select distinct {keys} from {model.name} m
            where exists (
                select 1 from ingest_log l
                where l.run_id = $run_id and l.status in ('replaced', 'rejected')
                and l.source = m.source and l.source_file = m.source_file)
            """
    if named:
        return named
    upstream = ", ".join(f"'{name}'" for name in spec.after)
    return (
        f"select distinct key as {spec.key[0]} from model_changes "
        f"where run_id = $run_id and model in ({upstream})"
    )


def _update(con: duckdb.DuckDBPyConnection, model: Model, spec: Incremental, run_id: str) -> None:
    """Recompute the model's rows of the keys the run touched (see `Incremental`).

    The model's SQL runs unchanged: a temp view of the same name as each input that has the key
    columns, holding only the touched keys' rows, shadows the table while it runs (inputs
    without them, e.g. the crosswalk, are only joined to the filtered rows).
    """
    same = " and ".join(f"t.{k} is not distinct from c.{k}" for k in spec.key)
    ((database,),) = con.execute("select current_database()").fetchall()
    inputs = [spec.input] if spec.input else []
    inputs += spec.after
    body = model.sql.strip().rstrip(";")
    shadowed = []
    try:
        con.execute(
            "create or replace temp table _touched_keys as " + _touched_sql(model, spec, database),
            {"run_id": run_id},
        )
        for name in inputs:
            columns = {r[0] for r in con.execute(f"describe {name}").fetchall()}
            if set(spec.key) <= columns:
                con.execute(
                    f'create temp view {name} as select t.* from "{database}".main.{name} t '
                    f"semi join _touched_keys c on {same}"
                )
                shadowed.append(name)
        rows = f"select * from (\n{body}\n) t semi join _touched_keys c on {same}"
        if not spec.changes:
            con.execute(f"delete from {model.name} t using _touched_keys c where {same}")
            con.execute(f"insert into {model.name} by name {rows}")
        else:
            # the touched rows as they were and as they are now, each found once: their
            # change column is logged from the small temp tables, where reading it back
            # from the model before the delete and after the insert took two more scans
            # of it (~0.3 s each for stg_orders at a million customers; the deletes'
            # and inserts' RETURNING clause made them slower still)
            con.execute(
                f"create or replace temp table _old_rows as "
                f"select t.rowid as row_id, t.{spec.changes} as k from {model.name} t "
                f"semi join _touched_keys c on {same}"
            )
            con.execute(f"delete from {model.name} where rowid in (select row_id from _old_rows)")
            con.execute(f"create or replace temp table _new_rows as {rows}")
            con.execute(f"insert into {model.name} by name select * from _new_rows")
            log_changes(
                con,
                model.name,
                run_id,
                f"select k from _old_rows union all select {spec.changes} from _new_rows",
            )
    except duckdb.Error as exc:
        raise RuntimeError(f"updating sql/{model.layer}/{model.name}.sql failed: {exc}") from exc
    finally:
        for name in shadowed:
            con.execute(f"drop view if exists temp.main.{name}")
        for name in ("_touched_keys", "_old_rows", "_new_rows"):
            con.execute(f"drop table if exists temp.main.{name}")


def run_checks(
    con: duckdb.DuckDBPyConnection, layer: str, sql_dir: Path | None = None
) -> list[CheckFailure]:
    """Run the checks of `layer`; return one failure per check that returned rows."""
    sql_dir = sql_dir or SQL_DIR
    failures = []
    for path in sorted((sql_dir / "checks" / layer).glob("*.sql")):
        body = path.read_text(encoding="utf-8").strip().rstrip(";")
        result = con.execute(f"select * from ({body}) limit 5")
        columns = [d[0] for d in result.description]
        sample = result.fetchall()
        if sample:
            count = con.execute(f"select count(*) from ({body})").fetchone()[0]
            failures.append(CheckFailure(path.stem, layer, count, columns, sample))
    return failures


def build(
    con: duckdb.DuckDBPyConnection,
    layers: tuple[str, ...] = LAYERS,
    sql_dir: Path | None = None,
    check: bool = True,
    run_id: str | None = None,
) -> list[str]:
    """Build `layers` in order, running each layer's checks; raise DataCheckError on failure.

    `run_id`: the run whose ingest changed the raw tables since the last build (incremental
    models are then updated, see `Incremental`); without it every model is rebuilt.
    """
    built = []
    for layer in layers:
        built += build_layer(con, layer, sql_dir, run_id)
        if check and (failures := run_checks(con, layer, sql_dir)):
            raise DataCheckError(failures)
    return built
