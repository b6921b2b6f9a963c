"""The report's pictures, each a matplotlib Figure (no pyplot, no global state) inlined as a PNG data URI.

PNG rather than SVG: a scatter of 300 designs among 300 naturals, or a logo of 150 columns, is a few tens of
kilobytes as a PNG and megabytes of SVG paths.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np

from protein_sedd.data.alphabet import AMINO_ACIDS

DESIGN_COLOUR, NATURAL_COLOUR, LINE_COLOUR = "#4C72B0", "#999999", "#C44E52"
HALF_WIDTH = {"size": (5.6, 3.4), "dpi": 100}  # two figures side by side on the page
COLUMNS_PER_ROW = 75  # logo columns per row: 400-residue families wrap into rows that stay readable


def data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float, **grid):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    return figure, figure.subplots(**grid) if grid else figure.subplots()


def training(metrics) -> object:
    """Training loss and the validation bound against steps (left), the learning rate (right)."""
    figure, (left, right) = _figure(10, 3.6, ncols=2, gridspec_kw={"width_ratios": [2, 1]})
    steps = metrics["step"].to_numpy()
    left.plot(
        steps,
        metrics["train_loss"].to_numpy(),
        color=DESIGN_COLOUR,
        linewidth=1.2,
        label="training loss (score entropy per token)",
    )
    left.set_xlabel("step")
    left.set_ylabel("training loss", color=DESIGN_COLOUR)
    if "valid_bits_per_residue" in metrics and np.isfinite(metrics["valid_bits_per_residue"]).any():
        valid = metrics[np.isfinite(metrics["valid_bits_per_residue"])]
        twin = left.twinx()
        twin.plot(
            valid["step"],
            valid["valid_bits_per_residue"],
            "o-",
            color=LINE_COLOUR,
            markersize=4,
            label="validation bound (bits/residue)",
        )
        twin.set_ylabel("validation bound, bits/residue", color=LINE_COLOUR)
    left.set_title("loss and validation bound")
    right.plot(steps, metrics["lr"].to_numpy(), color="#333333", linewidth=1.2)
    right.set_xlabel("step")
    right.set_title("learning rate")
    right.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    figure.tight_layout()
    return figure


def bits(designs: Sequence[float], naturals: Sequence[float] | None, threshold: float) -> object:
    """Family HMM bits of designs and of held-out naturals on one axis, the pass threshold marked."""
    figure, axes = _figure(*HALF_WIDTH["size"])
    values = [v for v in [*designs, *(naturals if naturals is not None else [])] if math.isfinite(v)]
    low, high = min([*values, threshold, 0.0]), max([*values, threshold]) + 1.0
    edges = np.linspace(low, high, 31)
    axes.hist(designs, bins=edges, color=DESIGN_COLOUR, alpha=0.75, label=f"designs (n = {len(designs)})")
    if naturals is not None and len(naturals):
        axes.hist(
            naturals,
            bins=edges,
            color=NATURAL_COLOUR,
            alpha=0.6,
            label=f"held-out naturals (n = {len(naturals)})",
        )
    axes.axvline(threshold, color=LINE_COLOUR, linestyle="--", label=f"pass at {threshold:g} bits")
    axes.set_xlabel("family HMM score, bits (0 = no hit)")
    axes.set_ylabel("sequences")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def lengths(designs: Sequence[int], reference: dict[int, float], stats: dict | None, label: str) -> object:
    """Design lengths against the training length distribution (both as fractions), or against the
    reference's median and range when only those are known."""
    figure, axes = _figure(*HALF_WIDTH["size"])
    counts = np.bincount(np.asarray(designs, dtype=int))
    shown = np.nonzero(counts)[0]
    axes.bar(shown, counts[shown] / counts.sum(), width=1.0, color=DESIGN_COLOUR, alpha=0.75,
             label=f"designs (n = {len(designs)})")  # fmt: skip
    if reference:
        total = sum(reference.values())
        xs = sorted(reference)
        axes.step(xs, [reference[x] / total for x in xs], where="mid", color="#333333", label=label)
    if stats is not None:
        axes.axvspan(stats["min"], stats["max"], color=NATURAL_COLOUR, alpha=0.15, label="reference range")
        axes.axvline(stats["median"], color="#333333", linestyle="--", label="reference median")
    axes.set_xlabel("length (residues)")
    axes.set_ylabel("fraction")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def composition(table: dict) -> object:
    """Residue frequencies of designs beside the reference's."""
    figure, axes = _figure(*HALF_WIDTH["size"])
    residues = [r for r in AMINO_ACIDS if r in table]
    x = np.arange(len(residues))
    axes.bar(x - 0.2, [table[r]["design"] for r in residues], 0.4, color=DESIGN_COLOUR, label="designs")
    axes.bar(x + 0.2, [table[r]["reference"] for r in residues], 0.4, color=NATURAL_COLOUR, label="reference")
    axes.set_xticks(x, residues)
    axes.set_ylabel("frequency")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def logos(design_counts, natural_counts, columns: Sequence[int]) -> object:
    """Sequence logos (information content, bits) of designs above naturals over the same HMM columns,
    `COLUMNS_PER_ROW` columns a row."""
    import logomaker
    import pandas as pd

    rows = math.ceil(len(columns) / COLUMNS_PER_ROW)
    width = min(len(columns), COLUMNS_PER_ROW)
    figure, axes = _figure(max(6.0, 0.16 * width + 1.5), 2.6 * rows, nrows=2 * rows, squeeze=False)
    for row in range(rows):
        part = slice(row * COLUMNS_PER_ROW, (row + 1) * COLUMNS_PER_ROW)
        for offset, (counts, label) in enumerate(((design_counts, "designs"), (natural_counts, "naturals"))):
            ax = axes[2 * row + offset, 0]
            frame = pd.DataFrame(counts[part], columns=list(AMINO_ACIDS[:20]))
            info = logomaker.transform_matrix(
                frame, from_type="counts", to_type="information", pseudocount=0.5
            )
            logomaker.Logo(info, ax=ax, color_scheme="chemistry", show_spines=False)
            ax.set_ylim(0, math.log2(20))
            ax.set_xlim(-0.5, width - 0.5)
            ax.set_ylabel(f"{label}\nbits", fontsize=7)
            shown = list(columns[part])
            ticks = [i for i, c in enumerate(shown) if c % 10 == 0]
            ax.set_xticks(ticks, [str(shown[i]) for i in ticks], fontsize=6)
            ax.tick_params(axis="y", labelsize=6)
    figure.tight_layout()
    return figure


def sequence_map(points: np.ndarray, is_design: np.ndarray, bits_values: np.ndarray, what: str) -> object:
    """Designs (circles) among naturals (triangles) on two principal components, coloured by family bits."""
    figure, axes = _figure(5.6, 4.4)
    finite = bits_values[np.isfinite(bits_values)]
    vmax = float(finite.max()) if finite.size else 1.0
    common = {"cmap": "viridis", "vmin": 0.0, "vmax": max(vmax, 1.0)}
    nat = ~is_design
    if nat.any():
        axes.scatter(
            points[nat, 0],
            points[nat, 1],
            c=bits_values[nat],
            marker="^",
            s=18,
            alpha=0.6,
            edgecolors="none",
            label="held-out naturals",
            **common,
        )
    image = axes.scatter(
        points[is_design, 0],
        points[is_design, 1],
        c=bits_values[is_design],
        marker="o",
        s=22,
        edgecolors="black",
        linewidths=0.4,
        label="designs",
        **common,
    )
    figure.colorbar(image, ax=axes, label="family HMM bits")
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title(f"PCA of {what}", fontsize=9)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def residue_plddt(curves: dict[str, np.ndarray], threshold: float) -> object:
    figure, axes = _figure(*HALF_WIDTH["size"])
    for name, curve in curves.items():
        axes.plot(np.arange(1, len(curve) + 1), curve, linewidth=1.0, label=name)
    axes.axhline(threshold, color=LINE_COLOUR, linestyle="--", linewidth=0.8)
    axes.set_ylim(0, 100)
    axes.set_xlabel("residue")
    axes.set_ylabel("pLDDT")
    if len(curves) <= 12:
        axes.legend(fontsize=7, ncol=3)
    figure.tight_layout()
    return figure


PLDDT_BANDS = [(90.0, "#0053D6"), (70.0, "#65CBF3"), (50.0, "#FFDB13"), (0.0, "#FF7D45")]  # AlphaFold DB's


def plddt_colour(value: float) -> str:
    return next(colour for low, colour in PLDDT_BANDS if value >= low)


def structure(ca: np.ndarray, residue_plddt: np.ndarray, title: str) -> object:
    """A static picture of a C-alpha trace (its first two principal axes), coloured by pLDDT."""
    figure, axes = _figure(3.2, 3.2)
    centred = ca - ca.mean(axis=0)
    _, _, axes_t = np.linalg.svd(centred, full_matrices=False)
    flat = centred @ axes_t[:2].T
    for i in range(len(flat) - 1):
        axes.plot(flat[i : i + 2, 0], flat[i : i + 2, 1], color=plddt_colour(residue_plddt[i]), linewidth=2)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(title, fontsize=8)
    figure.tight_layout()
    return figure


def tolerance(profile) -> object:
    """Per position, how many of its 19 substitutions are tolerated (`variant_maps.position_profile`)."""
    figure, axes = _figure(10, 2.8)
    axes.bar(profile["position"], profile["n_tolerated"], width=1.0, color=DESIGN_COLOUR)
    axes.set_xlabel("position")
    axes.set_ylabel("tolerated of 19")
    axes.set_ylim(0, 19)
    figure.tight_layout()
    return figure
