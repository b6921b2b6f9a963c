"""The training loop: score entropy, AdamW with warm-up, clipping, EMA, accumulation, validation ELBO,
early stopping (`trainer.patience`, early_stopping.py); a fine-tuning run starts from its parent's weights
(`init_from`, init_from.py).

Everything a run needs to continue lives in its checkpoint (weights, optimiser, EMA, batch position,
noise and dropout generators, early-stopping count), so `--resume` continues exactly where the run stopped:
on a CPU, a resumed run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from protein_sedd.atomic import atomic_path, write_json_atomic
from protein_sedd.baselines.autoregressive import sequence_nll
from protein_sedd.checkpoint import CHECKPOINT_DIR, resolve_checkpoint_dir
from protein_sedd.config_checks import validate_config
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import BatchStream, encode_all
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.data.prepare import prepare_splits, recorded_data_config
from protein_sedd.data.splits import SPLIT_METHODS, SPLITS
from protein_sedd.devices import select_device
from protein_sedd.diffusion.graph import AbsorbingGraph, UniformGraph, build_graph
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.diffusion.noise import GeometricNoise, LogLinearNoise, build_noise
from protein_sedd.distributed import Distributed, distributed
from protein_sedd.errors import UserError
from protein_sedd.evaluation.likelihood import sequence_bound
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.outputs import OutputFolder
from protein_sedd.training.checkpoint import CHECKPOINT_FOLDERS, load_trainer_state, save_checkpoint
from protein_sedd.training.ema import EMA
from protein_sedd.training.init_from import load_parent_weights
from protein_sedd.training.metrics import MetricsLog, plot_loss_curve
from protein_sedd.training.state import TrainingState, noise_seed

RUN_CONFIG = "config.yaml"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.csv"
LOSS_CURVE = "loss_curve.png"
# everything a run writes in its directory: what --overwrite may remove
RUN_FILES = [RUN_CONFIG, SPLITS_FILE, METRICS_FILE, LOSS_CURVE, *CHECKPOINT_FOLDERS]


def lr_at(step: int, t: DictConfig) -> float:
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "cosine":
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
        return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return t.lr


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints the last completed step and exits cleanly.

    The flag is looked at between micro-batches too, so a large `trainer.accumulate` does not delay a
    pre-emption by a whole step: the partial step is dropped, never applied half-accumulated.
    """

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def agreed(self, ranks: Distributed, group=None) -> bool:
        """Whether any rank was asked to stop; every rank calls this at the same point of the loop."""
        flag = torch.tensor([float(self.signal is not None)])
        if ranks.enabled:  # a CPU all-reduce (gloo `group` under NCCL): it never waits for the GPU
            torch.distributed.all_reduce(flag, group=group)
        return bool(flag[0] > 0)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    final_loss: float
    valid_bits_per_residue: float | None
    interrupted: bool = False


def _run_config(cfg: DictConfig, prepared, train_records) -> DictConfig:
    extra = {
        "alphabet": {
            "tokens": ALPHABET.tokens,
            "n_residues": ALPHABET.n_residues,
            "pad_index": ALPHABET.pad_index,
            "mask_index": ALPHABET.mask_index,
        },
        "lengths": _length_entry(cfg, prepared, train_records),
        "dataset": {
            "name": cfg.data.name,
            "source": str(prepared.source),
            "sha256": prepared.sha256,
            **prepared.splits.stats,
        },
    }
    return OmegaConf.merge(OmegaConf.to_container(cfg, resolve=True), extra)


def _length_entry(cfg: DictConfig, prepared, train_records) -> dict:
    """The run config's `lengths`: the histogram designs draw from (full-length training members when
    fragments are filtered, data/family.py) and, in words, which records it counts."""
    family = prepared.family
    if family is None:
        return LengthPrior.from_counts(train_records.length_counts(), cfg.model.max_length).to_config()
    members = family.length_members(train_records.indices)
    prior = LengthPrior.from_counts(family.store.length_counts(members), cfg.model.max_length)
    return {**prior.to_config(), "source": family.length_source(train_records.indices)}


def _write_splits(path: Path, prepared, method: str) -> None:
    """The dataset's sha256 and which records trained (`train_digest`, token_store.RecordView.ids_digest);
    the id lists too under data.split=sequence_hash, none under id_hash (millions of ids: the split is
    a function of the ids and the seed, and `evaluate` recomputes it)."""
    splits = prepared.splits
    payload = {"source": str(prepared.source), "sha256": prepared.sha256, "split": method}
    payload.update({f"n_{name}": len(splits[name]) for name in SPLITS})
    payload["train_digest"] = splits.train.ids_digest()
    if method == "sequence_hash":
        payload.update(splits.ids())
    write_json_atomic(path, payload)


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> OutputFolder:
    """Check and lock the run directory: a new or empty folder, or this trainer's own run.

    A new run never writes into someone else's folder, nor over an earlier run's checkpoint unless
    `overwrite` says so (which removes only the files a run writes); `resume` needs a run with a checkpoint.
    """
    folder = OutputFolder(run_dir, "train", "--out")
    state = folder.check(overwrite=overwrite and not resume)
    has_checkpoint = (run_dir / CHECKPOINT_DIR).exists() or (run_dir / f"{CHECKPOINT_DIR}.old").exists()
    earlier_run = state == "own" or (has_checkpoint and (run_dir / RUN_CONFIG).is_file())
    if resume and not (earlier_run and has_checkpoint):
        raise UserError(
            f"--resume: {run_dir} holds no checkpoint to resume; drop --resume to start a new run"
        )
    if not resume and has_checkpoint and not overwrite:
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start it again "
            "(removes its checkpoint), or choose another --out"
        )
    folder.lock()
    if overwrite and not resume:
        folder.remove_own_files()
    folder.record(RUN_FILES)
    return folder


def _recorded_splits(path: Path) -> dict:
    """splits.json of the run being resumed: its dataset's sha256 and its training ids or their digest
    (runs from before the digest record the ids alone), checked for shape."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # missing, unreadable, not UTF-8 or not JSON
        what = type(err).__name__
        raise UserError(f"--resume: {path}: unreadable ({what}); is this a run directory?") from None
    ok = (
        isinstance(recorded, dict)
        and isinstance(recorded.get("sha256"), str)
        and (
            isinstance(recorded.get("train_digest"), str)
            or isinstance(recorded.get("train"), list)
            and all(isinstance(i, str) for i in recorded["train"])
        )
    )
    if not ok:
        raise UserError(
            f"--resume: {path}: malformed (needs 'sha256' and 'train_digest' or a 'train' list of ids)"
        )
    return recorded


NUMERIC_METRICS = (
    "train_loss", "lr", "grad_norm", "tokens_per_s", "valid_nats_per_sequence", "valid_bits_per_residue",
    "elapsed_s",
)  # fmt: skip


def _check_metrics(path: Path) -> None:
    """metrics.csv of a resumed run: whole-number steps and numbers where numbers belong, before it is
    rewritten and plotted (a damaged log stops the resume with one line, not a traceback mid-run)."""
    if not path.exists():
        return
    try:
        rows = MetricsLog.read(path)
        for number, row in enumerate(rows, start=2):
            try:
                int(row["step"])
                for key in NUMERIC_METRICS:
                    if row.get(key):
                        float(row[key])
            except (KeyError, TypeError, ValueError):
                raise UserError(
                    f"--resume: {path}: malformed line {number}; repair it or move the file away"
                ) from None
    except (OSError, ValueError, csv.Error) as err:
        raise UserError(f"--resume: {path}: unreadable ({type(err).__name__})") from None


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
    run_cfg = _run_config(cfg, prepared, splits.train)
    _check_patience(cfg, splits.valid)
    _start_run_dir(run_dir, resume, prepared, run_cfg, ranks)
    weights = prepared.family.split_weights(splits.train.indices) if prepared.family else None
    state = _training_state(cfg, splits.train, dev, ranks, from_parent=not resume, weights=weights)
    if resume:
        checkpoint_dir = resolve_checkpoint_dir(run_dir)
        state.load_state_dict(load_trainer_state(checkpoint_dir), checkpoint_dir)
        if ranks.is_main:
            _check_metrics(run_dir / METRICS_FILE)
    metrics = (
        MetricsLog(run_dir / METRICS_FILE, resume_from_step=state.step if resume else None)
        if ranks.is_main
        else None
    )
    checkpoints = _Checkpoints(run_dir, run_cfg, ranks, saved_step=state.step if resume else None)
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


# setup: the run directory, the training state, and what every step uses


def _start_run_dir(run_dir: Path, resume: bool, prepared, run_cfg: DictConfig, ranks: Distributed) -> None:
    """A resumed run must see the dataset it was trained on; a new one records its splits and config."""
    if resume:
        recorded = _recorded_splits(run_dir / SPLITS_FILE)
        train = prepared.splits.train
        same_train = (
            recorded["train_digest"] == train.ids_digest()
            if "train_digest" in recorded
            else recorded["train"] == [r.id for r in train]
        )
        if recorded["sha256"] != prepared.sha256 or not same_train:
            raise UserError(
                f"--resume: the dataset differs from the one {run_dir} was trained on ({prepared.source})"
            )
    ranks.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _write_splits(run_dir / SPLITS_FILE, prepared, run_cfg.data.get("split", SPLIT_METHODS[0]))
            with atomic_path(run_dir / RUN_CONFIG) as tmp:
                OmegaConf.save(run_cfg, tmp)


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
    graph: AbsorbingGraph | UniformGraph
    noise: LogLinearNoise | GeometricNoise
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
        graph, noise = build_graph(cfg.graph.name, ALPHABET), build_noise(cfg.noise)
        return cls(cfg, state, forward_model, graph, noise, valid_tokens, dev, ranks)

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
            self.graph,
            self.noise,
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
            nats = sequence_bound(
                self.state.ema.model,
                self.graph,
                self.valid_tokens,
                t_samples=t.val_t_samples,
                batch_size=t.batch_size,
                seed=self.cfg.seed,
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


# logging and checkpoints

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


class _Checkpoints:
    """Saves the training state once per step reached; rank 0 writes, and a failure there (a full disk)
    stops every rank alike."""

    def __init__(self, run_dir: Path, run_cfg: DictConfig, ranks: Distributed, saved_step: int | None):
        self.run_dir, self.run_cfg, self.ranks = run_dir, run_cfg, ranks
        self.saved_step = saved_step

    def save(self, state: TrainingState) -> None:
        if self.saved_step == state.step:  # a stop right after a scheduled save: nothing new to write
            return
        self.saved_step = state.step

        def save() -> None:
            config = OmegaConf.merge(self.run_cfg, {"step": state.step})
            save_checkpoint(self.run_dir, state.ema.model, config, state.state_dict())
            plot_loss_curve(self.run_dir / METRICS_FILE, self.run_dir / LOSS_CURVE)

        self.ranks.from_main(save)


def _dump_rank_weights(model: torch.nn.Module, ranks: Distributed) -> None:
    """Testing hook: with PROTEIN_SEDD_RANK_WEIGHTS=DIR each rank saves its final raw weights there."""
    folder = os.environ.get("PROTEIN_SEDD_RANK_WEIGHTS")
    if folder:
        from protein_sedd.model_folder import write_weights

        write_weights(Path(folder) / f"rank{ranks.rank}.safetensors", model)
