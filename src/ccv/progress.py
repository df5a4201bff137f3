"""Progress of long steps, reported as log records so that any front end can show it.

Pipeline code calls `advance()` and knows nothing of terminals; the stages may run inside Prefect
tasks, in another thread, where no callback could be passed in as a flow parameter. The CLI
attaches `ProgressBars` (a logging handler drawing rich progress bars) while a command runs;
without it the records go nowhere (the `ccv.progress` logger does not propagate), so library
users and Prefect logs see no noise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

LOGGER = logging.getLogger("ccv.progress")
LOGGER.propagate = False
LOGGER.setLevel(logging.INFO)


def advance(task: str, completed: int, total: int | None = None, detail: str = "") -> None:
    """Report that `task` has done `completed` of `total` steps (total None: unknown)."""
    if LOGGER.handlers:
        LOGGER.info(
            "%s %s/%s %s",
            task,
            completed,
            total if total is not None else "?",
            detail,
            extra={"ccv_progress": (task, completed, total, detail)},
        )


class ProgressBars(logging.Handler):
    """Draws one rich progress bar per task named in `advance()` calls, in order of first report."""

    def __init__(self, console: Console) -> None:
        super().__init__(level=logging.INFO)
        self.progress = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            # not markup: a detail names files and values, which may hold "[...]"
            TextColumn("{task.fields[detail]}", style="dim", markup=False),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "ccv_progress", None)
        if event is None:
            return
        name, completed, total, detail = event
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, detail=detail)
        self.progress.update(
            self.tasks[name], completed=completed, total=total, detail=detail, refresh=True
        )
        if total is not None and completed >= total:
            self.progress.stop_task(self.tasks[name])

    def completed(self) -> dict[str, tuple[float, float | None]]:
        """(completed, total) per task name: what the bars show."""
        by_id = {task.id: task for task in self.progress.tasks}
        return {name: (by_id[i].completed, by_id[i].total) for name, i in self.tasks.items()}


@contextmanager
def progress_bars(console: Console) -> Iterator[ProgressBars]:
    """Show the progress of everything `advance()` reports while the block runs."""
    bars = ProgressBars(console)
    LOGGER.addHandler(bars)
    try:
        with bars.progress:
            yield bars
    finally:
        LOGGER.removeHandler(bars)
