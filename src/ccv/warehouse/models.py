"""Build the warehouse from the SQL files in `sql/`: one file per table, layered.

Every `sql/<layer>/<table>.sql` holds one `select` statement; the file name is the table name
(as in dbt). Layers build in order staging → core → marts. Inside a layer, a model that names
another model of the same layer builds after it, so files need no explicit `ref()`.

Checks live in `sql/checks/<layer>/<check>.sql`: each is a query returning the offending rows,
so zero rows means the check passed. They run right after their layer is built.

A model whose rows for a key depend only on its input's rows with that key, and keep the latest
delivery of it, can say so in a header line, and is then brought up to date instead of rebuilt
when the caller names the run (`run_id`) whose ingest changed the input:

    -- incremental: key = source, order_id; input = raw_orders

(see `Incremental`). Why: on a night that adds one percent of the orders, rebuilding the staged
orders reads and ranks all ten million of them again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from ccv.progress import advance

LAYERS: tuple[str, ...] = ("staging", "core", "marts")
SQL_DIR = Path(__file__).resolve().parents[3] / "sql"


@dataclass(frozen=True)
class Incremental:
    """A model kept up to date by key: on a night, the keys *touched* are those of the input rows
    the night's ingest loaded (`run_id`) and those of the model rows that came from a file the
    night replaced or rejected (its raw rows were deleted); the model's rows of touched keys are
    deleted and recomputed from all input rows with those keys, the others are kept. The
    input and the model both carry the key columns and the lineage columns `run_id` (input),
    `source` and `source_file` (both).

    This equals a rebuild for a model where, per key, removing an input row that is not the
    latest delivery does not change the result (the staging models keep the latest version of
    each record). Ingest is the only writer that adds or deletes input rows between two builds;
    `ccv forget` deletes rows by person instead, so it drops the state (`forget_incremental_state`)
    and the next night rebuilds, as it does when the model's SQL changed or no state is stored.
    """

    key: tuple[str, ...]
    input: str


_INCREMENTAL = re.compile(
    r"^--\s*incremental:\s*key\s*=\s*(?P<key>\w+(?:\s*,\s*\w+)*)\s*;"
    r"\s*input\s*=\s*(?P<input>\w+)\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Model:
    """One SQL model: a table built by `create or replace table <name> as <sql>`."""

    name: str
    layer: str
    sql: str

    @property
    def incremental(self) -> Incremental | None:
        """The model's `-- incremental:` header, if it has one."""
        match = _INCREMENTAL.search(self.sql)
        if not match:
            return None
        key = tuple(k.strip() for k in match["key"].split(","))
        return Incremental(key, match["input"])

    @property
    def digest(self) -> str:
        """What the stored state of an incremental model was computed with."""
        return hashlib.md5(self.sql.encode()).hexdigest()


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
        p.stem: Model(p.stem, layer, p.read_text(encoding="utf-8"))
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
    for model in models:
        advance(f"{layer} models", len(built), len(models), model.name)
        if model.incremental and run_id and _state_is_current(con, model):
            _update(con, model, model.incremental, run_id)
        else:
            _create(con, model)
        if model.incremental:
            _save_state(con, model)
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
    for model in models:
        _create(con, model)
    return [m.name for m in models]


def _create(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    body = model.sql.strip().rstrip(";")
    try:
        con.execute(f"create or replace table {model.name} as\n{body}\n")
    except duckdb.Error as exc:
        raise RuntimeError(f"building sql/{model.layer}/{model.name}.sql failed: {exc}") from exc


def _ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "create table if not exists model_state (model varchar primary key, digest varchar)"
    )


def _state_is_current(con: duckdb.DuckDBPyConnection, model: Model) -> bool:
    """The model's table was built (or updated) by its current SQL and nothing dropped it."""
    _ensure_state_table(con)
    rows = con.execute(
        "select s.digest from model_state s join duckdb_tables() t "
        "on t.table_name = s.model and t.database_name = current_database() "
        "and t.schema_name = 'main' where s.model = ?",
        [model.name],
    ).fetchall()
    return rows == [(model.digest,)]


def _save_state(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    _ensure_state_table(con)
    con.execute("insert or replace into model_state values (?, ?)", [model.name, model.digest])


def forget_incremental_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the next build of every incremental model a full one (after deletes that ingest
    did not make, e.g. an erasure)."""
    con.execute("drop table if exists model_state")


def _update(con: duckdb.DuckDBPyConnection, model: Model, spec: Incremental, run_id: str) -> None:
    """Recompute the model's rows of the keys the run touched (see `Incremental`).

    The model's SQL runs unchanged: a temp view of the same name as its input, holding only the
    touched keys' rows, shadows the input table while it runs.
    """
    keys = ", ".join(spec.key)
    same = " and ".join(f"t.{k} is not distinct from c.{k}" for k in spec.key)
    ((database,),) = con.execute("select current_database()").fetchall()
    table = f'"{database}".main.{spec.input}'
    body = model.sql.strip().rstrip(";")
    try:
        con.execute(
            f"""
            create or replace temp table _touched_keys as
            select distinct {keys} from {table} where run_id = $run_id
            union
            select distinct {keys} from {model.name} m
            where exists (
                select 1 from ingest_log l
                where l.run_id = $run_id and l.status in ('replaced', 'rejected')
                and l.source = m.source and l.source_file = m.source_file)
            """,
            {"run_id": run_id},
        )
        con.execute(
            f"create temp view {spec.input} as "
            f"select t.* from {table} t semi join _touched_keys c on {same}"
        )
        con.execute(f"delete from {model.name} t using _touched_keys c where {same}")
        con.execute(f"insert into {model.name} by name select * from (\n{body}\n)")
    except duckdb.Error as exc:
        raise RuntimeError(f"updating sql/{model.layer}/{model.name}.sql failed: {exc}") from exc
    finally:
        con.execute(f"drop view if exists temp.main.{spec.input}")
        con.execute("drop table if exists temp.main._touched_keys")


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
