"""`protein-sedd train`: fit a SEDD score network on a dataset or FASTA file."""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.commands.options import Device, Threads
from protein_sedd.errors import UserError
from protein_sedd.runtime.devices import check_threads, cpu_threads


def train(
    ctx: typer.Context,
    overrides: list[str] = typer.Argument(
        None,
        help="Hydra overrides, e.g. model=small trainer.batch_size=128 trainer.lr=3e-4",
        show_default=False,
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="Named dataset (acyp). Default: the config's (acyp)."
    ),
    fasta: Path = typer.Option(
        None,
        "--fasta",
        help="Train on this file instead (plain or .gz; a path, not '-'): unaligned FASTA, or an alignment "
        "(A2M, A3M, Stockholm, aligned FASTA; by extension or content) whose rows train as their full "
        "sequences. For an alignment, by default: fragments covering < 50% of the focus (first record, or "
        "data.focus=ID) are dropped, each sequence is weighted 1/(sequences within 80% identity over the "
        "focus columns) and designs draw full-length lengths (data.min_coverage, data.weights, "
        "data.weight_identity, data.length_prior). Unaligned FASTA drops records shorter than half the "
        "median length as fragments and draws full-length lengths too, but trains unweighted unless "
        "data.weights=identity (identity then estimated from shared 3-mers).",
    ),
    out: Path = typer.Option(None, "--out", help="Run directory. Default: runs/<data>-<model>-<timestamp>."),
    max_steps: int = typer.Option(
        None,
        "--max-steps",
        help="Optimiser steps (overrides trainer.max_steps). Default 20,000: about 2.5 hours for the default "
        "model=tiny on 2 CPU cores (about 0.45 s a step of 64 sequences); try --max-steps 200 first.",
        show_default=False,
    ),
    device: Device = "auto",
    threads: Threads = 0,
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from its last checkpoint."
    ),
    init_from: str = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from this checkpoint's weights (a run or checkpoint directory, a saved model, "
        "a Hub id, or 'bundled' for the shipped model) with its model, graph and noise; optimiser, step and "
        "EMA start fresh. Add trainer=finetune for a lower learning rate and early stopping.",
    ),
    devices: int = typer.Option(
        1, "--devices", help="Data-parallel processes (torchrun + DDP): one per GPU on CUDA, gloo on CPU."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start a new run in --out even if it holds an earlier run (its checkpoint, config, splits, "
        "metrics and loss curve are removed) or other files (kept; only the run's files are written).",
    ),
) -> None:
    """Train a DDiT score network with score entropy; writes a checkpoint, metrics.csv and loss_curve.png."""
    from protein_sedd.commands.ranks import arguments_given
    from protein_sedd.runtime.distributed import (
        check_devices,
        is_main_process,
        launch_ranks,
        world_size_from_env,
    )
    from protein_sedd.training.compose import training_config
    from protein_sedd.training.trainer import train as run_training

    under_torchrun = world_size_from_env() > 1  # every rank must write to the same run: no default name
    cfg, out = training_config(
        dataset=dataset, fasta=fasta, overrides=overrides or [], out=out, max_steps=max_steps, resume=resume,
        overwrite=overwrite, init_from=init_from, named_out=not under_torchrun,
    )  # fmt: skip
    if out is None:
        raise UserError("under torchrun pass --out RUN_DIR, so that every rank writes to the same run")
    check_devices(devices, device)
    check_threads(threads)
    if devices > 1:
        args = arguments_given(ctx, leave_out="devices")
        args[1:1] = ["--out", str(out)]  # the default name holds a timestamp: fix it once, for every rank
        raise typer.Exit(launch_ranks(devices, args))
    with cpu_threads(threads):
        result = run_training(cfg, out, resume=resume, overwrite=overwrite, device=device)
    if result.interrupted:
        raise typer.Exit(130)
    if is_main_process():  # every rank trained; one line says where the checkpoint is
        typer.echo(f"checkpoint: {out / 'checkpoint'} (step {result.step})")
