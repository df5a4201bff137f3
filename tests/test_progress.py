"""Progress reports: pipeline code reports through logging; the CLI draws the bars."""

from __future__ import annotations

import io

from rich.console import Console

from ccv.progress import advance, progress_bars


def test_bars_follow_reports_and_finish_at_their_totals():
    out = io.StringIO()
    with progress_bars(Console(file=out, width=120)) as bars:
        for step in range(3):
            advance("ingest", step, 4, f"file {step}")
        advance("core models", 2, 2, "orders")
        shown = bars.completed()
    assert shown == {"ingest": (2, 4), "core models": (2, 2)}
    text = out.getvalue()
    assert "ingest" in text and "2/4" in text and "core models" in text and "2/2" in text


def test_the_display_stops_listening_when_its_block_ends():
    with progress_bars(Console(file=io.StringIO())) as bars:
        advance("resolve", 1, 5)
    advance("resolve", 5, 5)
    assert bars.completed() == {"resolve": (1, 5)}
