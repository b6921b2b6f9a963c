"""`protein-sedd train`: fit a SEDD score network on a dataset or FASTA file."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protein_sedd.config import compose_config, config_dir
from protein_sedd.config_files import load_config_file
from protein_sedd.devices import THREADS_HELP, check_threads, cpu_threads
from protein_sedd.errors import UserError
from protein_sedd.limits import MAX_TRAIN_STEPS, check_int
from protein_sedd.paths import check_output_path


def _compose_new(dataset: str | None, fasta: Path | None, overrides: list[str]) -> DictConfig:
    if any(o.startswith("data=") for o in overrides) and (dataset or fasta):
        raise UserError("give the dataset either as --dataset/--fasta or as a data= override, not both")
    group = []
    if dataset:
        if not (config_dir() / "data" / f"{dataset}.yaml").is_file() or dataset == "fasta":
            known = sorted(p.stem for p in (config_dir() / "data").glob("*.yaml") if p.stem != "fasta")
            raise UserError(
                f"--dataset {dataset!r}: unknown dataset; known: {', '.join(known)} (or pass --fasta PATH)"
            )
        group = [f"data={dataset}"]
    elif fasta:
        group = ["data=fasta"]
    cfg = compose_config(group + overrides, resolve=False)
    if not isinstance(cfg.get("data"), DictConfig):  # e.g. `~data` deleted the group
        raise UserError("data: missing section; pick a dataset with --dataset, --fasta or data=NAME")
    if fasta:
        cfg.data.fasta = str(fasta)
    if OmegaConf.is_missing(cfg.data, "fasta"):
        raise UserError("data=fasta needs a file: pass --fasta PATH")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:  # an override's ${...} that cannot be resolved
        raise UserError(f"bad config override ({' '.join(str(err).split())[:200]})") from None
    return cfg


def _compose_resumed(run_dir: Path, overrides: list[str]) -> DictConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"--resume: {path} not found; is {run_dir} a protein-sedd run directory?")
    cfg = load_config_file(path)  # bounded, no aliases or interpolations: see config_files
    trainer = cfg.get("trainer")
    if isinstance(trainer, DictConfig) and "patience" not in trainer:
        trainer.patience = 0  # a run from before trainer.patience: early stopping off, as it trained
    if overrides:
        if any(
            "=" not in o or o.split("=", 1)[0] in ("model", "data", "noise", "graph", "trainer")
            for o in overrides
        ):
            raise UserError(
                "--resume takes key=value overrides only (e.g. trainer.lr=1e-4); config groups are fixed"
            )
        OmegaConf.set_struct(cfg, True)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
        except OmegaConfBaseException as err:
            raise UserError(f"bad override on --resume ({' '.join(str(err).split())[:200]})") from None
    return cfg


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
        "data.weight_identity, data.length_prior). Unaligned FASTA trains unweighted unless "
        "data.weights=identity (identity then estimated from shared 3-mers).",
    ),
    out: Path = typer.Option(None, "--out", help="Run directory. Default: runs/<data>-<model>-<timestamp>."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimiser steps (overrides trainer.max_steps)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu or cuda."),
    threads: int = typer.Option(0, "--threads", help=THREADS_HELP),
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
    from protein_sedd.config_checks import validate_config
    from protein_sedd.distributed import check_devices, is_main_process, launch_ranks, world_size_from_env
    from protein_sedd.training.trainer import train as run_training

    overrides = list(overrides or [])
    if max_steps is not None:
        check_int("max_steps", max_steps, 1, MAX_TRAIN_STEPS)
    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite starts it again: give one")
    if resume:
        if out is None:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        if dataset or fasta:
            raise UserError("--resume continues on the run's own dataset; drop --dataset/--fasta")
        if init_from is not None:
            raise UserError(
                "--resume continues a run from its own checkpoint (its parent is recorded); drop --init-from"
            )
        cfg = _compose_resumed(out, overrides)
    else:
        cfg = _compose_new(dataset, fasta, overrides)
        if init_from is not None:
            from protein_sedd.training.init_from import inherit_from_parent

            cfg = inherit_from_parent(cfg, overrides, init_from)
    validate_config(cfg)  # before any name is taken from it; --max-steps is bounded like trainer.max_steps
    if max_steps is not None:
        cfg.trainer.max_steps = max_steps
    check_devices(devices, device)
    check_threads(threads)
    under_torchrun = world_size_from_env() > 1
    if out is None:
        if under_torchrun:
            raise UserError("under torchrun pass --out RUN_DIR, so that every rank writes to the same run")
        name = Path(cfg.data.fasta).stem if cfg.data.name == "fasta" else cfg.data.name
        out = Path("runs") / f"{name}-{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    check_output_path(out, "--out")
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
