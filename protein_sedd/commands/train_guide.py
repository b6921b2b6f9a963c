"""`protein-sedd train-guide`: fit a label predictor on noised sequences, for `design --guide`.

Writes `--out`: guide.safetensors and guide.json (config, classes or label scale, the model it steers,
the training report). The maths is in `protein_sedd/guidance/`; this is a thin wrapper over
`ProteinSEDD.train_guide`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from protein_sedd.commands.options import Device, Threads
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device
from protein_sedd.runtime.progress import log_line

COMMAND = "train-guide"


def train_guide(
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="CSV with columns sequence,label (or id,label with --fasta). Labels are numbers: a few whole "
        "numbers are classes (0/1: has the property or not), anything else a measured value.",
    ),
    fasta: Path = typer.Option(None, "--fasta", help="FASTA holding the sequences --labels names by id."),
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        help="The SEDD model the guide will steer (its noise schedule noises the training sequences): a run "
        "directory, checkpoint, saved folder or bundled name. Default: the bundled ACYP model.",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder: guide.safetensors and guide.json."),
    task: str = typer.Option(
        "auto",
        "--task",
        help="auto (classes when the labels are at most 10 whole numbers), classify or regress.",
    ),
    steps: int = typer.Option(600, "--steps", help="Optimiser steps."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per step."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (AdamW, warm-up then cosine decay)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, the noise draws and the initial weights."),
    valid_fraction: float = typer.Option(
        0.2, "--valid-fraction", help="Share of the labelled sequences held out to report accuracy or error."
    ),
    device: Device = "auto",
    threads: Threads = 0,
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Write into a non-empty folder that holds no guide (only guide.safetensors and guide.json are "
        "replaced; other files stay).",
    ),
) -> None:
    """Train a guide (classifier or regressor on noised sequences) that `design --guide` steers with."""
    from protein_sedd.api import load
    from protein_sedd.guidance.labels import read_labels, task_of
    from protein_sedd.guidance.training import check_guide_fits, check_guide_settings
    from protein_sedd.io.outputs import OutputFolder

    check_guide_settings(steps, batch_size, lr, seed, valid_fraction)
    OutputFolder(out, COMMAND, "--out").check(inputs=[labels, fasta], overwrite=overwrite)
    check_threads(threads)
    requested = select_device(device)
    labelled = read_labels(labels, fasta)
    task = task_of(labelled.labels, task)  # label mistakes show before the checkpoint loads

    with cpu_threads(threads) as n_threads:
        model = load(checkpoint, requested)
        check_guide_fits(model, labelled)  # before any work or output
        from protein_sedd.runtime.progress import LoopProgress

        console = Console(stderr=True)
        log_line(
            console,
            f"train-guide: {len(labelled.sequences)} labelled sequences, task {task}, {steps} steps, device "
            f"{model.device.type}, {n_threads} CPU thread{'s' * (n_threads > 1)}, checkpoint {model.path}",
        )
        with LoopProgress(console, "guide steps", steps) as progress:
            guide = model.train_guide(
                labelled, task=task, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                valid_fraction=valid_fraction, on_step=progress.advance,
            )  # fmt: skip
    guide.record["labels"] = {"file": str(labels), "fasta": str(fasta) if fasta else None}
    from protein_sedd.guidance.guide import save_guide

    save_guide(guide, out, overwrite=overwrite, option="--out")
    _print_report(guide, out)


def _print_report(guide, out: Path) -> None:
    from protein_sedd.evaluation.reports import print_tables

    training = guide.record["training"]
    table = Table(title=f"train-guide: {guide.task}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if guide.task == "classify":
        table.add_row("classes", ", ".join(f"{c:g}" for c in guide.classes))
    table.add_row("sequences (train / held out)", f"{training['n_train']} / {training['n_valid']}")
    table.add_row("parameters", f"{training['parameters']:,}")
    table.add_row("final training loss", f"{training['final_loss']:.4f}")
    for key, value in (training["valid"] or {}).items():
        if key != "n":
            table.add_row(f"held out: {key.replace('_', ' ')}", f"{value:.3f}")
    print_tables(table)
    log_line(Console(), f"wrote {out}")
    if training["valid"] is None:
        Console(stderr=True).print("note: --valid-fraction 0 held nothing out; the guide is unmeasured")
