"""Whole-protein scans and their pictures: every single mutant of a stretch, a position x residue heatmap,
a per-position tolerance profile, and predicted against measured scores.

`scan_mutants` lists the 19 substitutions of each position (1-based, in the wild type's numbering); a scan
scores them like any variant table. From the scores:

- `position_profile`: per position, the wild-type residue, the mean, median and minimum score of its 19
  substitutions and how many score above `TOLERATED` nats (as likely as the wild type or nearly so: a
  position that tolerates change has many). Positions with no score (outside the model's focus) are
  left out.
- `heatmap_png`: residues (rows, grouped by property) x positions, coloured by score on a diverging scale
  centred at 0 (red below: worse than the wild type; blue above), the wild-type residue of each position
  marked with a dot; long proteins wrap in blocks of `POSITIONS_PER_BLOCK` positions, each with its mean
  profile above it, so 400 residues stay readable on one page.
- `scatter_png`: predicted against measured (`DMS_score`) with Spearman's rho in the title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from protein_sedd.data.alphabet import AMINO_ACIDS
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import atomic_path

# residues grouped by property, as mutation matrices are usually drawn
RESIDUE_ORDER = "AVILMFWYCGPSTNQHDEKR"
TOLERATED = -1.0  # nats: a substitution scoring above this is tolerated (near the wild type's likelihood)
POSITIONS_PER_BLOCK = 100


def parse_positions(text: str | None, first: int, last: int) -> list[int]:
    """`10-80,95` -> the 1-based positions, each in first..last (None: all of them); a mistake names
    {positions}."""
    if text is None:
        return list(range(first, last + 1))
    positions: list[int] = []
    for part in str(text).split(","):
        bounds = part.strip().split("-")
        try:
            if len(bounds) not in (1, 2):
                raise ValueError
            start, end = int(bounds[0]), int(bounds[-1])
        except ValueError:
            raise UserError(
                f"{{positions}} {text!r}: expected ranges of residue numbers such as 10-80,95",
                field="positions",
            ) from None
        if not first <= start <= end <= last:
            raise UserError(
                f"{{positions}} {part.strip()}: outside the wild type's residues {first}-{last}",
                field="positions",
            )
        positions.extend(range(start, end + 1))
    return sorted(set(positions))


def scan_mutants(wildtype: str, positions: Sequence[int], first: int = 1) -> pd.DataFrame:
    """Every single substitution at `positions` (1-based from `first`): columns mutant, position,
    wild_type, residue, in position then RESIDUE_ORDER order."""
    rows = []
    for position in positions:
        wild = wildtype[position - first]
        if wild not in RESIDUE_ORDER:
            continue  # X: no substitution to name
        rows.extend(
            (f"{wild}{position}{residue}", position, wild, residue)
            for residue in RESIDUE_ORDER
            if residue != wild
        )
    return pd.DataFrame(rows, columns=["mutant", "position", "wild_type", "residue"])


def _single(scores: pd.DataFrame) -> pd.DataFrame:
    """(position, wild type, residue, score) of the table's scored single mutants."""
    parsed = scores["mutant"].str.extract(r"^([A-Z])(\d+)([A-Z])$")
    frame = pd.DataFrame(
        {"position": pd.to_numeric(parsed[1]), "wild_type": parsed[0], "residue": parsed[2],
         "score": scores["score"]}
    )  # fmt: skip
    return frame.dropna()


def position_profile(scores: pd.DataFrame) -> pd.DataFrame:
    """Per scored position: wild_type, mean_score, median_score, min_score, n_scored, n_tolerated."""
    single = _single(scores)
    if single.empty:
        raise UserError("no single mutant was scored: nothing to draw (are the positions in the focus?)")
    grouped = single.groupby("position")
    profile = pd.DataFrame(
        {
            "wild_type": grouped["wild_type"].first(),
            "mean_score": grouped["score"].mean(),
            "median_score": grouped["score"].median(),
            "min_score": grouped["score"].min(),
            "n_scored": grouped["score"].size(),
            "n_tolerated": grouped["score"].apply(lambda s: int((s > TOLERATED).sum())),
        }
    )
    return profile.reset_index()


def heatmap_png(path: Path, scores: pd.DataFrame, title: str) -> None:
    """`heatmap_figure` written as PNG."""
    with atomic_path(path, suffix=".png") as tmp:
        heatmap_figure(scores, title).savefig(tmp)


def heatmap_figure(scores: pd.DataFrame, title: str):
    """The position x residue heatmap with the mean profile above each block (see the module doc)."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    single = _single(scores)
    profile = position_profile(scores)
    positions = profile["position"].to_numpy()
    matrix = np.full((len(RESIDUE_ORDER), len(positions)), np.nan)
    column = {int(p): i for i, p in enumerate(positions)}
    row = {r: i for i, r in enumerate(RESIDUE_ORDER)}
    for p, r, value in zip(single["position"], single["residue"], single["score"], strict=True):
        matrix[row[r], column[int(p)]] = value
    finite = matrix[np.isfinite(matrix)]
    span = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    blocks = math.ceil(len(positions) / POSITIONS_PER_BLOCK)
    width = min(len(positions), POSITIONS_PER_BLOCK)
    figure = Figure(figsize=(max(6.0, 0.12 * width + 2.0), 4.2 * blocks), dpi=110)
    grid = figure.add_gridspec(2 * blocks, 2, height_ratios=[1, 4] * blocks, width_ratios=[40, 1])
    image = None
    for block in range(blocks):
        part = slice(block * POSITIONS_PER_BLOCK, (block + 1) * POSITIONS_PER_BLOCK)
        shown = positions[part]
        top = figure.add_subplot(grid[2 * block, 0])
        top.plot(range(len(shown)), profile["mean_score"].to_numpy()[part], color="#333333", linewidth=1)
        top.axhline(0, color="#999999", linewidth=0.5)
        top.set_xlim(-0.5, width - 0.5)
        top.set_xticks([])
        top.set_ylabel("mean", fontsize=7)
        top.tick_params(labelsize=6)
        axes = figure.add_subplot(grid[2 * block + 1, 0])
        image = axes.imshow(matrix[:, part], aspect="auto", cmap="RdBu", norm=norm, interpolation="nearest")
        wild = [row.get(w) for w in profile["wild_type"].to_numpy()[part]]
        marked = [(x, y) for x, y in enumerate(wild) if y is not None]
        if marked:
            axes.scatter(*zip(*marked, strict=True), s=6, color="black", marker="o", label="wild type")
        axes.set_xlim(-0.5, width - 0.5)
        axes.set_yticks(range(len(RESIDUE_ORDER)), list(RESIDUE_ORDER), fontsize=6)
        step = 10 if width > 20 else 1  # as in the full blocks, so a short last block's labels do not collide
        ticks = [i for i, p in enumerate(shown) if p % step == 0]
        axes.set_xticks(ticks, [str(int(shown[i])) for i in ticks], fontsize=6)
        axes.set_xlabel("position", fontsize=7)
    if image is not None:
        bar = figure.colorbar(image, cax=figure.add_subplot(grid[1, 1]))
        bar.set_label("score (nats vs wild type)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.25 / figure.get_figheight()))  # room for the title
    return figure


def scatter_png(path: Path, predicted: np.ndarray, measured: np.ndarray, rho: float, title: str) -> None:
    """`scatter_figure` written as PNG."""
    with atomic_path(path, suffix=".png") as tmp:
        scatter_figure(predicted, measured, rho, title).savefig(tmp)


def scatter_figure(predicted: np.ndarray, measured: np.ndarray, rho: float, title: str):
    """Predicted against measured scores of the scored variants, rho in the title."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4.5), dpi=110)
    axes = figure.subplots()
    axes.scatter(predicted, measured, s=6, alpha=0.5, color="#4C72B0", edgecolors="none")
    axes.set_xlabel("predicted score (nats)")
    axes.set_ylabel("DMS_score")
    axes.set_title(f"{title}\nSpearman rho {rho:.3f} (n = {len(predicted)})", fontsize=9)
    figure.tight_layout()
    return figure


def scan_table(model, wildtype: str, *, first: int, positions: str | None, focus_start, allow_differences,
               where: str) -> pd.DataFrame:  # fmt: skip
    """The scan's variant table for `model`: `positions` (text, wild-type numbering), by default the
    model's focus region in the wild type (evaluation/wildtype.py), else the whole wild type; positions
    whose wild-type residue is not one of the 20 (X) are skipped."""
    from protein_sedd.evaluation.wildtype import place

    last = first + len(wildtype) - 1
    if positions is None:
        placement = place(wildtype, model.representation.focus_sequence, first=first, focus_start=focus_start,
                          allow_differences=allow_differences, where=where)  # fmt: skip
        start = first + placement.offset
        chosen = list(range(start, start + placement.length))
    else:
        chosen = parse_positions(positions, first, last)
    chosen = [p for p in chosen if wildtype[p - first] in AMINO_ACIDS]
    if not chosen:
        raise UserError(
            "{positions}: no position with a standard wild-type residue to scan", field="positions"
        )
    return scan_mutants(wildtype, chosen, first)
