"""The training loop: score entropy, AdamW with warm-up, clipping, EMA, accumulation, validation ELBO,
early stopping (`trainer.patience`, early_stopping.py); a fine-tuning run starts from its parent's weights
(`init_from`, init_from.py). Around the loop: the run directory (run_folder.py: claim, config and splits
records, resume checks, checkpoints), the learning-rate schedule (schedule.py), stopping by signal
(stop.py), the state a checkpoint holds (state.py) and the metrics log (metrics.py).

Everything a run needs to continue lives in its checkpoint (weights, optimiser, EMA, batch position,
noise and dropout generators, early-stopping count), so `--resume` continues exactly where the run stopped:
on a CPU, a resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from protein_sedd.baselines.autoregressive import sequence_nll
from protein_sedd.config.checks import validate_config
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import BatchStream, encode_all
from protein_sedd.data.prepare import prepare_splits, recorded_data_config
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.errors import UserError
from protein_sedd.io.outputs import OutputFolder
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.model.folder import CHECKPOINT_DIR
from protein_sedd.model.sources import resolve_checkpoint_dir
from protein_sedd.model.trained import TrainedModel
from protein_sedd.runtime.devices import select_device
from protein_sedd.runtime.distributed import Distributed, distributed
from protein_sedd.training.checkpoint import load_trainer_state
from protein_sedd.training.ema import EMA
from protein_sedd.training.init_from import load_parent_weights
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
from protein_sedd.training.state import TrainingState, noise_seed
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
    state = _training_state(cfg, splits.train, dev, ranks, from_parent=not resume, weights=weights)
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
    run = _Run.build(cfg, state, splits.valid[: t.val_sequences], dev, ranks)

    console.print(
        f"[bold]protein-sedd train[/]: {state.model.num_parameters() / 1e6:.2f}M parameters on {dev.type}"
        f"{f' x {ranks.world_size} ranks' if ranks.enabled else ''}; "
        f"{len(splits.train)} train / {len(splits.valid)} valid / {len(splits.test)} test sequences; "
        f"run dir {run_dir}"
    )
    if prepared.family is not None:
        console.print(prepared.family.summary(splits.stats))
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
    with StopRequest() as stop, Progress(*PROGRESS_COLUMNS, console=console, transient=False) as progress:
        task = progress.add_task("train", total=t.max_steps, completed=state.step, loss="-", speed="-")
        log = _StepLog(run, metrics, progress, task)
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
            loss_value, grad_value, stop_now = _sync_step(step_loss, grad_norm, stop, ranks)
            if not (math.isfinite(loss_value) and math.isfinite(grad_value)):
                bad_steps += 1
                _skip_non_finite(loss_value, bad_steps, state.step, t.max_bad_steps, run_dir, console)
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
                state.early_stopping.update(state.step, checked)
            early = state.early_stopping.should_stop(t.patience)
            if state.step % t.checkpoint_every == 0 or state.step == t.max_steps or stop_now or early:
                checkpoints.save(state)
            progress.update(task, completed=state.step)
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
                f"{stop_state.best_step}"
            )
    _dump_rank_weights(state.model, ranks)
    return TrainResult(run_dir, state.step, loss_value, log.valid_bits_per_residue, stopped is not None)


# setup: the training state and what every step uses


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


def _training_state(
    cfg: DictConfig,
    train_records,
    dev: torch.device,
    ranks: Distributed,
    from_parent: bool = True,
    weights=None,
) -> TrainingState:
    """A fresh state at step 0: the model initialised from `cfg.seed` (or, in a fine-tuning run and when
    `from_parent`, from the parent's weights, the EMA too), the batches at their start."""
    t = cfg.trainer
    torch.manual_seed(cfg.seed)
    model = DDiT(DDiTConfig.from_dict(OmegaConf.to_container(cfg.model))).to(dev)
    if from_parent and cfg.get("init_from") is not None:
        load_parent_weights(model, cfg.init_from)
    ema = EMA(model, t.ema)  # a copy of the model: a fine-tuning run's EMA starts at the parent
    fused = dev.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=fused
    )
    batches = BatchStream(
        train_records.tokens(),
        t.batch_size,
        cfg.seed,
        ALPHABET.pad_index,
        ranks.rank,
        ranks.world_size,
        weights,  # redundancy weights: batches drawn by weight (None: shuffled as before)
    )
    generator = torch.Generator(device=dev).manual_seed(noise_seed(cfg.seed, ranks.rank))
    return TrainingState(model, ema, optimizer, batches, generator, cfg.seed, ranks.rank)


@dataclass
class _Run:
    """What every step of a run uses besides its state: the loss, the validation set, the ranks."""

    cfg: DictConfig
    state: TrainingState
    forward_model: torch.nn.Module  # state.model as DDP and torch.compile wrap it
    model: TrainedModel  # the EMA network with the run's graph, noise schedule and config
    valid_tokens: list[torch.Tensor]  # this rank's share of the validation sequences
    dev: torch.device
    ranks: Distributed

    @classmethod
    def build(
        cls, cfg: DictConfig, state: TrainingState, valid_records, dev: torch.device, ranks: Distributed
    ) -> _Run:
        # wrapped after a resume has loaded the weights: DDP starts every rank from rank 0's
        forward_model = state.model
        if ranks.enabled:
            device_ids = [dev.index] if dev.type == "cuda" else None
            forward_model = DistributedDataParallel(forward_model, device_ids=device_ids)
        if cfg.trainer.compile:
            forward_model = torch.compile(forward_model)
        valid_tokens = encode_all([r.sequence for r in valid_records])[ranks.rank :: ranks.world_size]
        model = TrainedModel(state.ema.model, cfg)
        return cls(cfg, state, forward_model, model, valid_tokens, dev, ranks)

    def autocast(self) -> contextlib.AbstractContextManager:
        precision = self.cfg.trainer.precision
        if precision == "bf16" or (precision == "auto" and self.dev.type == "cuda"):
            return torch.autocast(self.dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # one optimiser step's micro-batches

    def accumulate(self, stop: StopRequest, stop_group=None) -> tuple[torch.Tensor, int] | None:
        """Forward and backward over one step's micro-batches: the step's loss (on the device) and its
        residue count, or None when a stop arrives between micro-batches (the partial step is dropped)."""
        accumulate = self.cfg.trainer.accumulate
        step_loss, step_residues = torch.zeros((), device=self.dev), 0
        for micro in range(accumulate):
            if micro > 0 and stop.agreed(self.ranks, stop_group):
                return None
            x0, lengths = next(self.state.batches)
            residues = int(lengths.sum())  # counted on the host, before the copy
            x0, lengths = x0.to(self.dev, non_blocking=True), lengths.to(self.dev, non_blocking=True)
            # under DDP, average gradients once per optimiser step, not once per micro-batch
            last = micro == accumulate - 1
            sync = (
                self.forward_model.no_sync() if self.ranks.enabled and not last else contextlib.nullcontext()
            )
            with sync:
                with self.autocast():
                    per_sequence = self.per_sequence_loss(x0, lengths)
                loss = per_sequence.sum() / residues
                (loss / accumulate).backward()
            step_loss += loss.detach() / accumulate
            step_residues += residues
        return step_loss, step_residues

    def per_sequence_loss(self, x0: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.cfg.model.causal:  # the autoregressive baseline
            return sequence_nll(self.forward_model, x0, lengths, ALPHABET.mask_index, ALPHABET.pad_index)
        return score_entropy_loss(
            self.forward_model,
            self.model.graph,
            self.model.noise,
            x0,
            lengths,
            self.state.generator,
            self.cfg.trainer.sampling_eps,
            time_conditioning=self.cfg.model.time_conditioning,
        )

    # validation

    def validate(self) -> tuple[float, float] | None:
        """The EMA model's -ELBO over every rank's validation sequences: nats/sequence, bits/residue."""
        t = self.cfg.trainer
        with self.autocast():
            nats, _ = self.model.bound(
                self.valid_tokens, t_samples=t.val_t_samples, batch_size=t.batch_size, seed=self.cfg.seed
            )
        residues = sum(len(x) for x in self.valid_tokens)
        sums = torch.tensor([float(nats.sum()), len(self.valid_tokens), residues])
        total, count, residues = self.ranks.sum(sums)
        if count == 0:
            return None
        return float(total / count), float(total / residues / LN2)


def _sync_step(
    step_loss: torch.Tensor, grad_norm: torch.Tensor, stop: StopRequest, ranks: Distributed
) -> tuple[float, float, bool]:
    """One host sync per step: the loss averaged over ranks, the gradient norms summed (one rank's
    non-finite norm makes the step skipped on every rank, never applied) and the stop flag."""
    synced = ranks.sum(
        torch.cat(
            [
                torch.stack([step_loss.float(), grad_norm.float()]).cpu(),
                torch.tensor([float(stop.signal is not None)]),
            ]
        )
    )
    return float(synced[0]) / ranks.world_size, float(synced[1]), bool(synced[2] > 0)


def _skip_non_finite(loss: float, bad_steps: int, step: int, max_bad_steps: int, run_dir: Path, console):
    """Warn of a skipped step; too many in a row stop the run, its last checkpoint the last good one."""
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    console.print(
        f"[yellow]warning[/]: non-finite {what} at step {step}; step skipped ({bad_steps} in a row)"
    )
    if bad_steps >= max_bad_steps:
        plural = "losses" if what == "loss" else "gradient norms"
        raise UserError(
            f"{bad_steps} non-finite {plural} in a row at step {step}; stopped with the last "
            f"good checkpoint in {run_dir / CHECKPOINT_DIR} (try a lower trainer.lr)"
        )


# logging

PROGRESS_COLUMNS = [
    TextColumn("[bold blue]train"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("loss {task.fields[loss]}"),
    TextColumn("{task.fields[speed]} steps/s"),
    TimeRemainingColumn(),
]


class _StepLog:
    """Each step's one metrics.csv row (training numbers, validation, or both; rank 0 writes it) and the
    progress bar's loss and speed, measured since the previous logged step."""

    def __init__(self, run: _Run, metrics: MetricsLog | None, progress: Progress, task):
        self.run, self.metrics, self.progress, self.task = run, metrics, progress, task
        self.started = self.last = time.perf_counter()
        self.tokens = 0  # residues trained on, all ranks together, since the last logged step
        self.valid_bits_per_residue: float | None = None  # of the latest validation

    def record(self, step: int, loss: float, grad_norm: torch.Tensor, tokens: int) -> float | None:
        """After optimiser step `step` (counted from 1): log it and validate when they are due. Returns
        the bound (bits/residue) of a scheduled validation (a multiple of trainer.val_every), else None."""
        t = self.run.cfg.trainer
        self.tokens += tokens
        row, checked = {}, None
        if self.metrics is not None and (step % t.log_every == 0 or step == t.max_steps):
            row.update(self._training_numbers(loss, lr_at(step - 1, t), float(grad_norm)))
        if step % t.val_every == 0 or step == t.max_steps:
            result = self.run.validate()  # on every rank: the ranks sum their shares
            if result is not None:
                nats, self.valid_bits_per_residue = result
                bits = self.valid_bits_per_residue
                row.update(valid_nats_per_sequence=f"{nats:.4f}", valid_bits_per_residue=f"{bits:.5f}")
                checked = bits if step % t.val_every == 0 else None
                self.progress.console.print(
                    f"step {step}: valid -ELBO {nats:.2f} nats/sequence, {bits:.4f} bits/residue"
                )
        if self.metrics is not None and row:
            self.metrics.append(step=step, **row)
        return checked

    def _training_numbers(self, loss: float, lr: float, grad_norm: float) -> dict:
        now = time.perf_counter()
        row = dict(
            train_loss=f"{loss / LN2:.5f}",
            lr=f"{lr:.3e}",
            grad_norm=f"{grad_norm:.4f}",
            tokens_per_s=f"{self.tokens / (now - self.last):.1f}",
            elapsed_s=f"{now - self.started:.1f}",
        )
        speed = f"{self.run.cfg.trainer.log_every / (now - self.last):.2f}"
        self.progress.update(self.task, loss=f"{loss / LN2:.3f} bits/res", speed=speed)
        self.last, self.tokens = now, 0
        return row


def _dump_rank_weights(model: torch.nn.Module, ranks: Distributed) -> None:
    """Testing hook: with PROTEIN_SEDD_RANK_WEIGHTS=DIR each rank saves its final raw weights there."""
    folder = os.environ.get("PROTEIN_SEDD_RANK_WEIGHTS")
    if folder:
        from protein_sedd.model.folder import write_weights

        write_weights(Path(folder) / f"rank{ranks.rank}.safetensors", model)
