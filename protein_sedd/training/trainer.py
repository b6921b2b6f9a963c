"""The training loop: score entropy, AdamW with warm-up, clipping, EMA, accumulation, validation ELBO,
early stopping (`trainer.patience`, early_stopping.py); a fine-tuning run starts from its parent's weights
(`init_from`, init_from.py). Around the loop: the run directory (run_folder.py: claim, config and splits
records, resume checks, checkpoints), the learning-rate schedule (schedule.py), stopping by signal
(stop.py), the state a checkpoint holds (state.py), one step's forward, backward and sync (step.py), and
the progress bar and metrics log (step_log.py, metrics.py).

Everything a run needs to continue lives in its checkpoint (weights, optimiser, EMA, batch position,
noise and dropout generators, early-stopping count), so `--resume` continues exactly where the run stopped:
on a CPU, a resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.text import Text

from protein_sedd.config.checks import validate_config
from protein_sedd.data.prepare import prepare_splits, recorded_data_config
from protein_sedd.errors import UserError
from protein_sedd.io.outputs import OutputFolder
from protein_sedd.model.sources import resolve_checkpoint_dir
from protein_sedd.runtime.devices import select_device
from protein_sedd.runtime.distributed import Distributed, distributed
from protein_sedd.runtime.progress import log_line
from protein_sedd.training.checkpoint import BEST_DIR, load_trainer_state
from protein_sedd.training.metrics import MetricsLog
from protein_sedd.training.run_folder import (
    METRICS_FILE,
    Checkpoints,
    check_metrics,
    claim_run_dir,
    run_config,
    start_run_dir,
)
from protein_sedd.training.schedule import lr_at
from protein_sedd.training.state import fresh_state
from protein_sedd.training.step import Run, skip_non_finite, sync_step
from protein_sedd.training.step_log import StepLog, TrainProgress
from protein_sedd.training.stop import StopRequest


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    final_loss: float
    valid_bits_per_residue: float | None
    interrupted: bool = False


def train(
    cfg: DictConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    console: Console | None = None,
):
    validate_config(cfg)
    requested = select_device(device)
    claimed: list[OutputFolder] = []  # rank 0's lock on the run directory, held until training ends
    try:
        with distributed(requested) as ranks:
            ranks.from_main(lambda: claimed.append(claim_run_dir(Path(run_dir), resume, overwrite)))
            return _train(cfg, Path(run_dir), resume, ranks.device(requested), ranks, console)
    finally:
        for folder in claimed:
            folder.__exit__(*sys.exc_info())


def _train(cfg: DictConfig, run_dir: Path, resume: bool, dev: torch.device, ranks: Distributed, console):
    console = console or Console(stderr=True, quiet=not ranks.is_main)
    t = cfg.trainer
    data_cfg = recorded_data_config(cfg) if resume else cfg.data  # resume reads the file it trained on
    prepared = None

    def prepare_on_main() -> None:
        nonlocal prepared
        prepared = prepare_splits(data_cfg, cfg.model.max_length)

    # rank 0 builds (or checks) the token cache first, one build rather than one a rank; the others then
    # open it (rank 0 keeps what it prepared: the file is not read twice)
    ranks.from_main(prepare_on_main)
    if prepared is None:
        prepared = prepare_splits(data_cfg, cfg.model.max_length)
    splits = prepared.splits
    run_cfg = run_config(cfg, prepared, splits.train)
    _check_patience(cfg, splits.valid)
    start_run_dir(run_dir, resume, prepared, run_cfg, ranks)
    weights = prepared.family.split_weights(splits.train.indices) if prepared.family else None
    state = fresh_state(cfg, splits.train, dev, ranks, from_parent=not resume, weights=weights)
    if resume:
        checkpoint_dir = resolve_checkpoint_dir(run_dir)
        state.load_state_dict(load_trainer_state(checkpoint_dir), checkpoint_dir)
        if ranks.is_main:
            check_metrics(run_dir / METRICS_FILE)
    metrics = (
        MetricsLog(run_dir / METRICS_FILE, resume_from_step=state.step if resume else None)
        if ranks.is_main
        else None
    )
    checkpoints = Checkpoints(run_dir, run_cfg, ranks, saved_step=state.step if resume else None)
    run = Run.build(cfg, state, splits.valid[: t.val_sequences], dev, ranks)

    total = state.model.num_parameters()
    trainable = sum(p.numel() for p in state.model.parameters() if p.requires_grad)
    share = "" if trainable == total else f" ({trainable / 1e6:.3g}M trainable, {trainable / total:.2%})"
    opening = Text.assemble(
        ("protein-sedd train", "bold"),
        f": {total / 1e6:.2f}M parameters{share} on {dev.type}"
        f"{f' x {ranks.world_size} ranks' if ranks.enabled else ''}; "
        f"{len(splits.train)} train / {len(splits.valid)} valid / {len(splits.test)} test sequences; "
        f"run dir {run_dir}",
    )
    console.print(opening, soft_wrap=True, highlight=False)  # one line in a log, whatever the path holds
    if prepared.family is not None:
        log_line(console, prepared.family.summary(splits.stats, cfg.model.max_length))
    if cfg.get("init_from") is not None:
        parent = cfg.init_from
        console.print(
            f"fine-tuning {parent.source} (step {parent.step}, sha256 {parent.sha256[:12]}); "
            "optimiser, step and EMA start fresh"
        )
    loss_value, bad_steps = float("nan"), 0
    stopped = None  # how a stop by signal ended the run, for its last message
    # under NCCL the stop flag travels on a CPU (gloo) group of its own, so checking it between
    # micro-batches never waits for queued GPU work
    stop_group = torch.distributed.new_group(backend="gloo") if ranks.enabled and ranks.nccl else None
    if resume:
        log_line(console, f"resumed from step {state.step} of {t.max_steps} ({checkpoint_dir})")
    with StopRequest() as stop, TrainProgress(console, t.max_steps, state.step) as progress:
        log = StepLog(run, metrics, progress)
        state.model.train()
        while state.step < t.max_steps and not state.early_stopping.should_stop(t.patience):
            for group in state.optimizer.param_groups:
                group["lr"] = lr_at(state.step, t)
            state.optimizer.zero_grad(set_to_none=True)
            step_start = state.position()
            accumulated = run.accumulate(stop, stop_group)
            if accumulated is None:
                # back to the end of the last completed step: --resume redraws these batches and this noise
                state.rewind(step_start)
                checkpoints.save(state)
                stopped = " (the partial step was dropped): checkpoint saved; continue with --resume"
                break
            step_loss, residues = accumulated
            grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), t.grad_clip)
            loss_value, grad_value, stop_now = sync_step(step_loss, grad_norm, stop, ranks)
            if not (math.isfinite(loss_value) and math.isfinite(grad_value)):
                bad_steps += 1
                skip_non_finite(loss_value, bad_steps, state.step, t.max_bad_steps, run_dir, console)
                if not stop_now:
                    continue
                # the skipped step's batches stay consumed, as in an uninterrupted run
                checkpoints.save(state)
                stopped = ": checkpoint saved"
                break
            bad_steps = 0
            state.optimizer.step()
            state.ema.update(state.model, state.step)
            state.step += 1
            checked = log.record(state.step, loss_value, grad_norm, residues * ranks.world_size)
            if checked is not None:  # the same number on every rank: they stop together
                if state.early_stopping.update(state.step, checked) and t.keep_best:
                    checkpoints.save_best(state)
            early = state.early_stopping.should_stop(t.patience)
            if state.step % t.checkpoint_every == 0 or state.step == t.max_steps or stop_now or early:
                checkpoints.save(state)
            progress.update(state.step)
            if stop_now:
                stopped = ": checkpoint saved; continue with --resume"
                break
        if stopped is not None:
            progress.console.print(f"[yellow]stopped by signal at step {state.step}[/]{stopped}")
        elif state.early_stopping.should_stop(t.patience):
            stop_state = state.early_stopping
            progress.console.print(
                f"early stop at step {state.step}: {stop_state.bad_checks} validations without a lower bound "
                f"(trainer.patience={t.patience}); best {stop_state.best:.4f} bits/residue at step "
                f"{stop_state.best_step}{f' (its weights: {run_dir / BEST_DIR})' if t.keep_best else ''}"
            )
    return TrainResult(run_dir, state.step, loss_value, log.valid_bits_per_residue, stopped is not None)


def _check_patience(cfg: DictConfig, valid_records) -> None:
    """Early stopping judges the validation bound: a run without validation sequences cannot use it."""
    t = cfg.trainer
    if t.patience == 0 or (valid_records and t.val_sequences > 0):
        return
    why = "trainer.val_sequences=0" if valid_records else f"data.valid_fraction={cfg.data.valid_fraction}"
    raise UserError(
        f"trainer.patience={t.patience} needs validation sequences and {why} leaves none; "
        "hold some out or set trainer.patience=0"
    )
