"""Report files for the evaluators: CSV tables, histograms and console tables.

Everything here is generic (no knowledge of folding or HMMs), so every evaluator reports the same way;
every file is written atomically (`protein_sedd.io.atomic`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from protein_sedd.io.atomic import atomic_path, write_text_atomic


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def histogram_png(path: Path, values: Sequence[float], **options) -> None:
    """`histogram_figure(values, **options)` written as PNG."""
    figure = histogram_figure(values, **options)
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp)


def histogram_figure(
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    threshold: float | None = None,
    threshold_label: str | None = None,
    value_range: tuple[float, float] | None = None,
    bins: int = 30,
    size: tuple[float, float] = (6, 4),
    dpi: int = 120,
):
    """A histogram with an optional vertical threshold line, as a Figure (no pyplot, no global state);
    `size` in inches at `dpi`."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=size, dpi=dpi)
    axes = figure.subplots()
    finite = [v for v in values if v is not None and math.isfinite(v)]
    bin_range = value_range or _bin_range(finite, threshold)
    axes.hist(finite, bins=bins, range=bin_range, color="#4C72B0", edgecolor="white")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 ticks
    if threshold is not None:
        axes.axvline(
            threshold, color="#C44E52", linestyle="--", label=threshold_label or f"threshold {threshold:g}"
        )
        axes.legend(loc="best")  # off the bars (every design at 0 bits sits at the upper left)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    if value_range is not None:
        axes.set_xlim(*value_range)
    figure.tight_layout()
    return figure


def _bin_range(finite: Sequence[float], threshold: float | None) -> tuple[float, float] | None:
    """Bins over the data and the threshold line together, never zero-wide: bars keep a visible width
    beside the line (every design at 0 bits, the line at 25, was one invisible hairline bar)."""
    if not finite:
        return None
    low, high = min(finite), max(finite)
    if threshold is not None:
        low, high = min(low, threshold), max(high, threshold)
    return (low - 0.5, high + 0.5) if low == high else (low, high)


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "nan" if not math.isfinite(value) else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def summary_table(title: str, summary: Mapping) -> Table:
    """A two-column table of the scalar entries of a summary dict (nested ones are skipped)."""
    table = Table(title=title, show_header=False)
    table.add_column("metric", style="bold", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")  # long paths wrap, never lose their end
    for key, value in summary.items():
        if not isinstance(value, (Mapping, list, tuple)):
            table.add_row(key, _cell(value))
    return table


def rows_table(title: str, frame: pd.DataFrame, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        # numbers and flags are short: never wrapped, so their headers stay whole; a narrow terminal
        # folds the text columns (ids) instead, character by character, without cutting them short
        if pd.api.types.is_numeric_dtype(frame[column]):
            table.add_column(column, justify="right", no_wrap=True)
        else:
            table.add_column(column, overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*(_cell(row[c]) for c in columns))
    return table


def print_tables(*tables: Table, console: Console | None = None) -> None:
    """rich tables on a terminal; anywhere else (a log file, a pipe) plain rows, one line a row, never
    wrapped: rich lays a table out at 80 columns off a terminal and folds long ids across lines."""
    console = console or Console()
    for table in tables:
        if console.is_terminal:
            console.print(table)
        else:
            console.print(plain_table(table), markup=False, highlight=False, soft_wrap=True)


def plain_table(table: Table) -> str:
    """A table as text: its title, then rows of cells padded to their column's width (right-aligned
    where the column is), two spaces apart, the header first where the table shows one."""
    columns = table.columns
    rows = [[str(cell) for cell in column.cells] for column in columns]
    lines = list(zip(*rows, strict=True)) if rows else []
    if table.show_header:
        lines.insert(0, tuple(str(column.header) for column in columns))
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(columns))]
    text = [str(table.title)] if table.title else []
    for line in lines:
        cells = [
            cell.rjust(width) if column.justify == "right" else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text)
