"""metrics.csv (one row per logged step) and the loss-curve picture drawn from it.

A step both logged and validated is one row holding both. Files from before that (a training row and a
validation row for the same step) read and plot the same way.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from protein_sedd.io.atomic import atomic_path

COLUMNS = [
    "step",
    "train_loss",
    "lr",
    "grad_norm",
    "tokens_per_s",
    "valid_nats_per_sequence",
    "valid_bits_per_residue",
    "elapsed_s",
]


class MetricsLog:
    def __init__(self, path: Path, resume_from_step: int | None = None):
        self.path = path
        if resume_from_step is not None and path.exists():
            # drop rows logged after the checkpoint we resume from: they will be logged again
            rows = [r for r in self.read(path) if int(r["step"]) <= resume_from_step]
            self._write_all(rows)
        elif not path.exists() or resume_from_step is None:
            self._write_all([])

    def _write_all(self, rows: list[dict]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, **row) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow({k: row.get(k, "") for k in COLUMNS})

    @staticmethod
    def read(path: Path) -> list[dict]:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))


def plot_loss_curve(metrics_path: Path, out_path: Path) -> None:
    figure = loss_curve_figure(MetricsLog.read(metrics_path))
    with atomic_path(out_path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120)


def loss_curve_figure(rows: list[dict]):
    """Train loss and validation bound against the step (a matplotlib Figure: no pyplot, no global state)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    train = [(int(r["step"]), float(r["train_loss"])) for r in rows if r["train_loss"]]
    valid = [
        (int(r["step"]), float(r["valid_bits_per_residue"])) for r in rows if r["valid_bits_per_residue"]
    ]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps: no 2.5 ticks on a short run
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss (bits/residue)", color="tab:blue", alpha=0.8)
    if valid:
        ax.plot(*zip(*valid, strict=True), "o-", label="valid -ELBO (bits/residue)", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per residue")
    ax.set_title("protein-sedd training")
    finite = [v for _, v in train + valid if math.isfinite(v)]
    if finite:
        ax.set_ylim(bottom=max(0.0, min(finite) - 0.2), top=min(max(finite), 2.5 * min(finite) + 0.5))
    ax.grid(alpha=0.3)
    if train or valid:
        ax.legend()
    fig.tight_layout()
    return fig
