"""`protein-sedd evaluate`: the likelihood bound of a checkpoint on held-out sequences."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from protein_sedd.commands.options import Device, Threads
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device


def evaluate(
    checkpoint: Path = typer.Option(
        ...,
        "--checkpoint",
        help="Run directory, checkpoint directory, or a bundled model's name (acyp-tiny).",
    ),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Named dataset (acyp); its split is recomputed exactly. Default: the checkpoint's own.",
    ),
    split: str = typer.Option("test", "--split", help="train, valid or test (with --dataset)."),
    fasta: Path = typer.Option(
        None, "--fasta", help="Evaluate every record of this FASTA file instead (a path, not '-')."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    csv_out: Path = typer.Option(
        None,
        "--csv",
        help="Also write one row per sequence: id, length, nats, bits_per_residue, standard_error_nats. nats "
        "bounds -log p(x) from above (length term included; exact for model=ar); standard_error_nats is the "
        "Monte Carlo error of that sequence's estimate (0 when exact): two sequences are ranked reliably "
        "when their nats differ by several errors; more --t-samples shrink the errors.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --json/--csv even when they are not earlier evaluate outputs."
    ),
    t_samples: int = typer.Option(
        32,
        "--t-samples",
        help="Noise-level draws per sequence (stratified). The estimate is unbiased, with low variance for "
        "absorbing-graph models; for uniform-graph ones it is heavy-tailed: give many, read the standard "
        "error.",
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the estimate: same seed, same number."),
    device: Device = "auto",
    threads: Threads = 0,
) -> None:
    """Held-out -log p(x) in nats/sequence and bits/residue: the ELBO bound (SEDD) or exact NLL (model=ar)."""
    from protein_sedd.api import load
    from protein_sedd.evaluation import likelihood_report as report_
    from protein_sedd.evaluation.reports import print_tables

    report_.check_evaluation_settings(fasta, dataset, split, t_samples, batch_size, seed)
    report_.check_outputs(json_out, csv_out, [fasta], overwrite)
    check_threads(threads)
    model = load(checkpoint, select_device(device))
    with cpu_threads(threads):
        report = model.evaluate(
            fasta, dataset=dataset, split=split, t_samples=t_samples, batch_size=batch_size, seed=seed,
            progress=True,
        )  # fmt: skip
    table = Table(title=f"negative ELBO on {report['source']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in report_.SHOWN_KEYS:
        value = report[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    print_tables(table)
    report_.write_outputs(report, json_out, csv_out)
