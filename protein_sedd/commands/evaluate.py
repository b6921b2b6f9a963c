"""`protein-sedd evaluate`: the likelihood bound of a checkpoint on held-out sequences."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from protein_sedd.errors import UserError

SUMMARY_KEYS = ["nats_per_sequence", "bits_per_residue", "perplexity_bound", "n_sequences", "n_residues"]


def _records(checkpoint, dataset: str | None, split: str, fasta: Path | None):
    from protein_sedd.data.fasta import read_fasta
    from protein_sedd.data.prepare import prepare_splits

    config = checkpoint.config
    if fasta is not None:
        return read_fasta(fasta), str(fasta)
    own = dataset is None or dataset == config.data.name
    if own:
        data_cfg = config.data  # the checkpoint's own dataset, its FASTA path included
        dataset = config.data.name
    elif dataset == "fasta":
        raise UserError("--dataset fasta: this checkpoint was not trained on a FASTA file; use --fasta PATH")
    else:
        data_cfg = OmegaConf.merge(config.data, {"name": dataset, "fasta": None})
    prepared = prepare_splits(data_cfg, int(config.model.max_length))
    recorded = config.get("dataset", {}).get("sha256")
    if own and recorded and recorded != prepared.sha256:
        raise UserError(
            f"{prepared.source}: differs from the file this checkpoint was trained on (sha256 mismatch)"
        )
    records = prepared.splits[split]
    if not records:
        raise UserError(f"split {split!r} of {dataset} is empty for this checkpoint's split settings")
    return records, f"{dataset}:{split}"


def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory or checkpoint directory."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        help="Named dataset (acyp); its split is recomputed exactly. Default: the checkpoint's own.",
    ),
    split: str = typer.Option("test", "--split", help="train, valid or test (with --dataset)."),
    fasta: Path = typer.Option(None, "--fasta", help="Evaluate every record of this FASTA file instead."),
    json_out: Path = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    t_samples: int = typer.Option(32, "--t-samples", help="Noise-level draws per sequence (stratified)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per forward pass."),
    seed: int = typer.Option(0, "--seed", help="Seed of the estimate: same seed, same number."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Held-out -log p(x) in nats/sequence and bits/residue: the ELBO bound (SEDD) or exact NLL (model=ar)."""
    from protein_sedd.evaluation.likelihood import check_lengths, likelihood_report
    from protein_sedd.training.checkpoint import load_checkpoint
    from protein_sedd.training.trainer import select_device

    if dataset is not None and fasta is not None:
        raise UserError("give one of --dataset NAME (with --split) or --fasta PATH, not both")
    if split not in ("train", "valid", "test"):
        raise UserError(f"--split {split!r}: choose train, valid or test")
    if t_samples < 1 or batch_size < 1:
        raise UserError("--t-samples and --batch-size must be >= 1")
    if json_out is not None and json_out.parent and not json_out.parent.is_dir():
        raise UserError(f"--json {json_out}: folder {json_out.parent} does not exist")
    dev = select_device(device)
    loaded = load_checkpoint(checkpoint, dev)
    records, source = _records(loaded, dataset, split, fasta)
    check_lengths(records, int(loaded.config.model.max_length), source)

    console = Console(stderr=True)
    columns = [TextColumn("[bold blue]evaluate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("evaluate", total=len(records))
        report = likelihood_report(
            loaded,
            records,
            t_samples=t_samples,
            batch_size=batch_size,
            seed=seed,
            progress=lambda n: progress.advance(task, n),
        )
    report = {"checkpoint": str(loaded.path), "source": source, **report}
    table = Table(title=f"negative ELBO on {source}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_KEYS + ["length_nats_per_sequence", "standard_error_nats_per_sequence"]:
        value = report[key]
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    if json_out is not None:
        tmp = json_out.with_name(f".{json_out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2))
        tmp.replace(json_out)
