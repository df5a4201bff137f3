"""Small, uniform matplotlib charts rendered to inline PNG `data:` URIs.

Rendering is headless: the Agg backend is selected before pyplot is imported, and every chart is
drawn on a `matplotlib.figure.Figure` of its own (never pyplot's global figure registry), which is
closed after it is saved. So reports can be built from a Prefect worker thread, a CLI or a test
without a display, and without figures piling up in a long-running process.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): never a GUI backend
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullLocator

# 1,000 rather than 10^3 on log axes (and no label below 1)
_PLAIN = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else "")
# counts on linear axes: 950, 1.2k, 3.4M (not 3400000, nor "1e6" above the axis)
_COMPACT = FuncFormatter(lambda v, _: nice_number(v))

DPI = 90
WIDTH = 6.0
HEIGHT = 3.0

# One palette for the whole report (colour-blind safe, Okabe-Ito order).
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
RED = "#D55E00"
SKY = "#56B4E9"
PURPLE = "#CC79A7"
YELLOW = "#F0E442"
GREY = "#7F7F7F"
PALETTE = [BLUE, ORANGE, GREEN, RED, SKY, PURPLE, YELLOW, GREY]

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 8,
    "axes.edgecolor": "#999999",
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


@contextmanager
def _figure(width: float = WIDTH, height: float = HEIGHT) -> Iterator[Figure]:
    """A figure drawn with the report style; closed when the block ends.

    No layout engine: each chart places its axes with `_fit`. Why: matplotlib's constrained
    (or tight) layout measures every text of the figure several times before the one draw
    that renders it — two thirds of a chart's time, ~0.8 s of the nine charts of a report,
    which a nightly run writes every night (and the test suite hundreds of times)."""
    with matplotlib.rc_context(STYLE):
        fig = plt.figure(figsize=(width, height), dpi=DPI)
        try:
            yield fig
        finally:
            plt.close(fig)


EDGE = 0.08
"""Inches of white left around a chart."""
TICKS = 0.1
"""Inches from an axis to its tick labels (tick length and pad: 3.5 + 3.5 points)."""
LABEL = 0.19
"""Inches an axis label takes, with its pad (8-point text)."""
TITLE = 0.26
"""Inches the title takes above the axes, with its pad (9-point bold text)."""
TICK_TEXT = 0.13
"""Inches of one line of tick labels (7.5-point text)."""
RIGHT = 0.15
"""Inches kept free right of the axes: half the last x tick label can stand out there."""
NOTE_POINTS, NOTE_OFFSET = 7, 3
"""The size of the totals written after bars, and their distance from the bar, in points."""
PANEL_GAP = 0.3
"""Inches between a panel of grouped bars and the next panel's labels."""


def _text_widths(fig: Figure, texts: Sequence[str], size: float) -> list[float]:
    """The width of each of `texts` at `size` points, in inches, as the renderer draws it."""
    renderer = fig.canvas.get_renderer()
    prop = FontProperties(family=STYLE["font.family"], size=size)
    return [
        renderer.get_text_width_height_descent(t, prop, ismath=False)[0] / fig.dpi for t in texts
    ]


def _tick_labels(axis: Axis) -> list[str]:
    """The tick labels `axis` will draw (its locator and formatter, without drawing)."""
    low, high = sorted(axis.get_view_interval())
    locs = [v for v in axis.get_majorticklocs() if low <= v <= high]
    return [str(t) for t in axis.get_major_formatter().format_ticks(locs)]


def _left(fig: Figure, ax: Axes) -> float:
    """Inches `ax` needs left of it: its y tick labels and y label."""
    widths = _text_widths(fig, _tick_labels(ax.yaxis), STYLE["ytick.labelsize"])
    return TICKS + max(widths, default=0.0) + (LABEL if ax.get_ylabel() else 0.0)


def _below(ax: Axes) -> float:
    """Inches `ax` needs below it: its x tick labels and x label."""
    return TICKS + TICK_TEXT + (LABEL if ax.get_xlabel() else 0.0)


def _fit(
    fig: Figure,
    ax: Axes,
    right: float = RIGHT,
    spill: Sequence[tuple[float, float, str]] = (),
) -> None:
    """Place the one axes of `fig` so that its labels, ticks and title fit the figure.

    `right`: inches kept free right of the axes (`RIGHT`, or room for a colour bar); `spill`:
    texts written right of data points (x, y, text; `NOTE_POINTS` in size, `NOTE_OFFSET`
    after the point), which may run past the axes: the axes is narrowed until they fit."""
    width, height = fig.get_size_inches()
    bottom = EDGE + _below(ax)
    left = (EDGE + _left(fig, ax)) / width
    notes = _text_widths(fig, [text for _, _, text in spill], NOTE_POINTS)
    widths = [w + NOTE_OFFSET / 72 for w in notes]
    for _ in range(3):  # narrowing the axes moves the points: converges in two steps
        fig.subplots_adjust(
            left=left,
            right=1 - (EDGE + right) / width,
            bottom=bottom / height,
            top=1 - (EDGE + TITLE) / height,
        )
        if not spill:
            return
        ends = [
            ax.transData.transform((x, y))[0] / fig.dpi + w
            for (x, y, _), w in zip(spill, widths, strict=True)
        ]
        # (a zero on a log axis has no place: its text is not drawn either; 0.02 in of slack)
        over = max((e for e in ends if np.isfinite(e)), default=0.0) - (width - EDGE - 0.02)
        if over <= 0:
            return
        right += over


def _data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar_height(n: int) -> float:
    """Figure height for `n` horizontal bars: readable labels, never huge."""
    return min(7.0, max(2.0, 0.8 + 0.26 * n))


def _short(label: object, width: int = 34) -> str:
    text = "(none)" if label is None else str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def hbar(
    labels: Sequence[object],
    series: dict[str, Sequence[float]],
    title: str,
    xlabel: str,
    colors: Sequence[str] | None = None,
    log_x: bool = False,
    notes: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, stacked when `series` has several entries; first label on top.

    Each bar is labelled with its total, or with `notes` when given."""
    n = len(labels)
    colors = list(colors or PALETTE)
    with _figure(height=_bar_height(n)) as fig:
        ax = fig.add_subplot()
        y = np.arange(n)
        left = np.zeros(n)
        for i, (name, values) in enumerate(series.items()):
            values = np.asarray(values, dtype=float)
            ax.barh(y, values, left=left, color=colors[i % len(colors)], label=name, height=0.7)
            left += values
        ax.set_yticks(y, [_short(label) for label in labels])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        if log_x:
            ax.set_xscale("log")
            ax.set_xlim(0.8, max(10.0, left.max() * 3))
            ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks are slow and noisy
            ax.xaxis.set_major_formatter(_PLAIN)
        elif n:
            ax.set_xlim(0, max(1.0, left.max()) * 1.25)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.xaxis.set_major_formatter(_COMPACT)
        labels_text = list(notes) if notes is not None else [f"{t:,.0f}" for t in left]
        for yi, total, text in zip(y, left, labels_text, strict=True):
            ax.annotate(
                text,
                (total, yi),
                xytext=(NOTE_OFFSET, 0),
                textcoords="offset points",
                va="center",
                fontsize=NOTE_POINTS,
                color="#333333",
            )
        if len(series) > 1:
            ax.legend(loc="lower right")
        _fit(fig, ax, spill=list(zip(left, y, labels_text, strict=True)))
        return _data_uri(fig)


def grouped_hbars(panels: Sequence[tuple[str, Sequence[object], Sequence[float]]]) -> str:
    """Side-by-side horizontal bar panels: one (title, labels, values) per panel."""
    n = max((len(labels) for _, labels, _ in panels), default=1)
    with _figure(width=WIDTH * 1.35, height=_bar_height(n)) as fig:
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for i, (ax, (title, labels, values)) in enumerate(zip(axes, panels, strict=True)):
            y = np.arange(len(labels))
            ax.barh(y, values, color=PALETTE[i % len(PALETTE)], height=0.7)
            ax.set_yticks(y, [_short(label, 24) for label in labels])
            ax.invert_yaxis()
            ax.grid(axis="y", visible=False)
            ax.set_title(title)
            ax.set_xlabel("customers")
            ax.set_xlim(0, max([1.0, *values]) * 1.2)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
            ax.xaxis.set_major_formatter(_COMPACT)
            for yi, value in zip(y, values, strict=True):
                ax.annotate(
                    f"{value:,.0f}",
                    (value, yi),
                    xytext=(NOTE_OFFSET, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=NOTE_POINTS,
                )
        # panels of equal width, each after the room its own labels take (`_fit`, per panel)
        width, height = fig.get_size_inches()
        lefts = [_left(fig, ax) for ax in axes]
        panel = (width - 2 * EDGE - RIGHT - sum(lefts) - PANEL_GAP * (len(axes) - 1)) / len(axes)
        bottom = EDGE + max(_below(ax) for ax in axes)
        top = height - EDGE - TITLE
        x = EDGE
        for ax, left in zip(axes, lefts, strict=True):
            x += left
            ax.set_position([x / width, bottom / height, panel / width, (top - bottom) / height])
            x += panel + PANEL_GAP
        return _data_uri(fig)


def bars(
    x: Sequence[object],
    heights: Sequence[float],
    title: str,
    xlabel: str,
    ylabel: str,
    colors: Sequence[str] | str = BLUE,
    log_y: bool = False,
) -> str:
    """Vertical bars at discrete x values (cluster sizes, NPS answers)."""
    with _figure() as fig:
        ax = fig.add_subplot()
        if all(isinstance(v, int) for v in x):
            # integer x (sizes, scores): bars at their value, ticks chosen by matplotlib
            ax.bar(list(x), heights, color=colors, width=0.8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
            ax.set_xlim(min(x) - 0.7, max(x) + 0.7)
        else:
            positions = np.arange(len(x))
            ax.bar(positions, heights, color=colors, width=0.75)
            ax.set_xticks(positions, [str(v) for v in x])
        ax.grid(axis="x", visible=False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(0.7, max([1.0, *heights]) * 2)
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(_PLAIN)
        else:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(_COMPACT)
        _fit(fig, ax)
        return _data_uri(fig)


def histogram(
    values: Sequence[float],
    title: str,
    xlabel: str,
    ylabel: str = "customers",
    bins: int = 40,
    log_y: bool = False,
    color: str = BLUE,
) -> str:
    """A histogram of a continuous value."""
    data = np.asarray(values, dtype=float)
    with _figure() as fig:
        ax = fig.add_subplot()
        ax.hist(data, bins=bins, color=color, edgecolor="white", linewidth=0.4)
        ax.grid(axis="x", visible=False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(_PLAIN)
        else:  # counts: whole numbers only (a compact "0" twice would read as a typo)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_formatter(_COMPACT)
        _fit(fig, ax)
        return _data_uri(fig)


def heatmap(
    counts: np.ndarray,
    notes: list[list[str]],
    row_labels: Sequence[object],
    col_labels: Sequence[object],
    title: str,
    xlabel: str,
    ylabel: str,
) -> str:
    """An annotated count matrix (row 0 drawn on top)."""
    with _figure(height=3.6) as fig:
        ax = fig.add_subplot()
        image = ax.imshow(counts, cmap="Blues", aspect="auto", vmin=0)
        ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
        ax.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
        ax.grid(False)
        ax.spines[:].set_visible(False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        peak = counts.max() if counts.size else 0
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                dark = peak and counts[i, j] > 0.55 * peak
                ax.text(
                    j,
                    i,
                    notes[i][j],
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "#222222",
                )
        _fit(fig, ax, right=0.1)
        # the colour bar takes its room from the axes' right (with its ticks and label)
        fig.colorbar(image, ax=ax, label="customers", shrink=0.9, fraction=0.12, pad=0.03)
        return _data_uri(fig)


def nice_number(value: float) -> str:
    """A compact label for a money amount: 950, 1.2k, 3.4M."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"
