"""Report files for the evaluators: atomic CSV/JSON/text writes, a staged output folder, histograms, tables.

Everything here is generic (no knowledge of folding or HMMs) so every evaluator writes its outputs the same
way: a file appears complete or not at all, and an output folder appears only once all of it is written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _json_safe(value):
    """NaN/inf are not JSON: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Mapping) -> None:
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2) + "\n")


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


@contextmanager
def staged_output_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder next to `target`; on success it replaces `target`, on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.replace(backup)
    staging.replace(target)
    shutil.rmtree(backup, ignore_errors=True)


def histogram_png(
    path: Path,
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    threshold: float | None = None,
    threshold_label: str | None = None,
    value_range: tuple[float, float] | None = None,
    bins: int = 30,
) -> None:
    """A histogram with an optional vertical threshold line, written as PNG (no pyplot, no global state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.subplots()
    finite = [v for v in values if v is not None and math.isfinite(v)]
    axes.hist(finite, bins=bins, range=value_range, color="#4C72B0", edgecolor="white")
    if threshold is not None:
        axes.axvline(
            threshold, color="#C44E52", linestyle="--", label=threshold_label or f"threshold {threshold:g}"
        )
        axes.legend(loc="upper left")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    if value_range is not None:
        axes.set_xlim(*value_range)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp)
    tmp.replace(path)


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "nan" if not math.isfinite(value) else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def summary_table(title: str, summary: Mapping) -> Table:
    """A two-column table of the scalar entries of a summary dict (nested ones are skipped)."""
    table = Table(title=title, show_header=False)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if not isinstance(value, (Mapping, list, tuple)):
            table.add_row(key, _cell(value))
    return table


def rows_table(title: str, frame: pd.DataFrame, columns: Sequence[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if frame[column].dtype == object else "right")
    for _, row in frame.iterrows():
        table.add_row(*(_cell(row[c]) for c in columns))
    return table


def print_tables(*tables: Table) -> None:
    console = Console()
    for table in tables:
        console.print(table)
