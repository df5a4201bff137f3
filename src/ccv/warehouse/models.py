"""Build the warehouse from the SQL files in `sql/`: one file per table, layered.

Every `sql/<layer>/<table>.sql` holds one `select` statement; the file name is the table name
(as in dbt). Layers build in order staging → core → marts. Inside a layer, a model that names
another model of the same layer builds after it, so files need no explicit `ref()`.

Checks live in `sql/checks/<layer>/<check>.sql`: each is a query returning the offending rows,
so zero rows means the check passed. They run right after their layer is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import duckdb

from ccv.progress import advance

LAYERS: tuple[str, ...] = ("staging", "core", "marts")
SQL_DIR = Path(__file__).resolve().parents[3] / "sql"


@dataclass(frozen=True)
class Model:
    """One SQL model: a table built by `create or replace table <name> as <sql>`."""

    name: str
    layer: str
    sql: str


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
    con: duckdb.DuckDBPyConnection, layer: str, sql_dir: Path | None = None
) -> list[str]:
    """Create or replace every table of `layer`; return the table names in build order."""
    built = []
    models = load_layer(layer, sql_dir)
    for model in models:
        advance(f"{layer} models", len(built), len(models), model.name)
        _create(con, model)
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
) -> list[str]:
    """Build `layers` in order, running each layer's checks; raise DataCheckError on failure."""
    built = []
    for layer in layers:
        built += build_layer(con, layer, sql_dir)
        if check and (failures := run_checks(con, layer, sql_dir)):
            raise DataCheckError(failures)
    return built
