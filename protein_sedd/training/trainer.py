"""The training loop: score entropy, AdamW with warm-up, clipping, EMA, accumulation, validation ELBO.

Everything a run needs to continue lives in its checkpoint (weights, optimiser, EMA, batch position,
noise generator), so `--resume` continues exactly where the run stopped: on a CPU, a resumed run
reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from protein_sedd.baselines.autoregressive import sequence_nll
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import BatchStream, encode_all
from protein_sedd.data.prepare import prepare_splits
from protein_sedd.data.splits import length_histogram
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.diffusion.noise import build_noise
from protein_sedd.distributed import Distributed, distributed
from protein_sedd.errors import UserError
from protein_sedd.evaluation.likelihood import sequence_bound
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.training.checkpoint import (
    CHECKPOINT_DIR,
    check_weights,
    load_trainer_state,
    resolve_checkpoint_dir,
    save_checkpoint,
)
from protein_sedd.training.ema import EMA
from protein_sedd.training.metrics import MetricsLog, plot_loss_curve

RUN_CONFIG = "config.yaml"
SPLITS_FILE = "splits.json"


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device {name!r}: choose auto, cpu or cuda")
    return torch.device(name)


TRAINER_TYPES = {
    "batch_size": int, "accumulate": int, "max_steps": int, "lr": float, "min_lr_ratio": float,
    "warmup_steps": int, "weight_decay": float, "grad_clip": float, "ema": float, "sampling_eps": float,
    "log_every": int, "val_every": int, "val_sequences": int, "val_t_samples": int, "checkpoint_every": int,
    "max_bad_steps": int, "compile": bool,
}  # fmt: skip


def _check_types(section: str, values: DictConfig, types: dict[str, type]) -> None:
    """Overrides arrive as YAML scalars: refuse a string where a number or flag belongs."""
    for key, expected in types.items():
        value = values.get(key)
        numeric_ok = expected is float and isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, bool) != (expected is bool) or not (isinstance(value, expected) or numeric_ok):
            raise UserError(f"{section}.{key}={value!r}: expected {expected.__name__}")


def validate_config(cfg: DictConfig) -> None:
    model_types = {name: type(f.default) for name, f in DDiTConfig.__dataclass_fields__.items()}
    _check_types("model", cfg.model, model_types)
    _check_types("trainer", cfg.trainer, TRAINER_TYPES)
    t = cfg.trainer
    checks = [
        (t.batch_size >= 1, f"trainer.batch_size={t.batch_size} must be >= 1"),
        (t.accumulate >= 1, f"trainer.accumulate={t.accumulate} must be >= 1"),
        (t.max_steps >= 1, f"trainer.max_steps={t.max_steps} must be >= 1"),
        (t.lr > 0, f"trainer.lr={t.lr} must be > 0"),
        (t.warmup_steps >= 0, f"trainer.warmup_steps={t.warmup_steps} must be >= 0"),
        (0 <= t.ema < 1, f"trainer.ema={t.ema} must be in [0, 1)"),
        (t.schedule in ("constant", "cosine"), f"trainer.schedule={t.schedule!r}: choose constant or cosine"),
        (
            t.precision in ("auto", "bf16", "fp32"),
            f"trainer.precision={t.precision!r}: choose auto, bf16 or fp32",
        ),
        (
            cfg.graph.name in ("absorbing", "uniform"),
            f"graph.name={cfg.graph.name!r}: choose absorbing or uniform",
        ),
        (
            cfg.noise.type in ("loglinear", "geometric"),
            f"noise.type={cfg.noise.type!r}: choose loglinear or geometric",
        ),
        (
            cfg.graph.name == "absorbing" or cfg.model.time_conditioning,
            "graph=uniform needs model.time_conditioning=true (its scores depend on the noise level)",
        ),
        (
            not cfg.model.causal or not cfg.model.time_conditioning,
            "model=ar (causal) takes no time conditioning: set model.time_conditioning=false",
        ),
        (
            cfg.model.hidden_size % cfg.model.n_heads == 0,
            "model.hidden_size must be divisible by model.n_heads",
        ),
        (
            cfg.model.vocab_size == ALPHABET.size,
            f"model.vocab_size must be {ALPHABET.size} (the alphabet size)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def lr_at(step: int, t: DictConfig) -> float:
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.schedule == "cosine":
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
        return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return t.lr


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next step boundary and exits cleanly."""

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
        "lengths": {"histogram": [[k, v] for k, v in length_histogram(train_records).items()]},
        "dataset": {
            "name": cfg.data.name,
            "source": str(prepared.source),
            "sha256": prepared.sha256,
            **prepared.splits.stats,
        },
    }
    return OmegaConf.merge(OmegaConf.to_container(cfg, resolve=True), extra)


def _write_splits(path: Path, prepared) -> None:
    payload = {"source": str(prepared.source), "sha256": prepared.sha256, **prepared.splits.ids()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def train(
    cfg: DictConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    device: str = "auto",
    console: Console | None = None,
):
    validate_config(cfg)
    requested = select_device(device)
    with distributed(requested) as ranks:
        return _train(cfg, Path(run_dir), resume, ranks.device(requested), ranks, console)


def _train(cfg: DictConfig, run_dir: Path, resume: bool, dev: torch.device, ranks: Distributed, console):
    console = console or Console(stderr=True, quiet=not ranks.is_main)
    has_checkpoint = (run_dir / CHECKPOINT_DIR).exists() or (run_dir / f"{CHECKPOINT_DIR}.old").exists()
    if resume and not has_checkpoint:
        raise UserError(
            f"--resume: {run_dir} holds no checkpoint to resume; drop --resume to start a new run"
        )
    if not resume and has_checkpoint:
        raise UserError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
        )

    prepared = prepare_splits(cfg.data, cfg.model.max_length)
    splits = prepared.splits
    run_cfg = _run_config(cfg, prepared, splits.train)
    if resume:
        recorded = json.loads((run_dir / SPLITS_FILE).read_text())
        if recorded["sha256"] != prepared.sha256 or recorded["train"] != [r.id for r in splits.train]:
            raise UserError(
                f"--resume: the dataset differs from the one {run_dir} was trained on ({prepared.source})"
            )
    ranks.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _write_splits(run_dir / SPLITS_FILE, prepared)
            OmegaConf.save(run_cfg, run_dir / RUN_CONFIG)

    t = cfg.trainer
    torch.manual_seed(cfg.seed)
    model = DDiT(DDiTConfig.from_dict(OmegaConf.to_container(cfg.model))).to(dev)
    ema = EMA(model, t.ema)
    fused = dev.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=fused
    )
    graph = build_graph(cfg.graph.name, ALPHABET)
    noise = build_noise(cfg.noise)
    train_tokens = encode_all([r.sequence for r in splits.train])
    stream = BatchStream(
        train_tokens, t.batch_size, cfg.seed, ALPHABET.pad_index, ranks.rank, ranks.world_size
    )
    valid_tokens = encode_all([r.sequence for r in splits.valid[: t.val_sequences]])[
        ranks.rank :: ranks.world_size
    ]
    # each rank draws its own noise; rank 0's generator is the one checkpointed
    generator = torch.Generator(device=dev).manual_seed(cfg.seed + 1 + 7919 * ranks.rank)

    step = 0
    if resume:
        state = load_trainer_state(resolve_checkpoint_dir(run_dir))
        for key, module in (("model", model), ("ema", ema.model)):
            check_weights(module, state[key], run_dir / CHECKPOINT_DIR)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["batches"])
        step = int(state["step"])
        if ranks.is_main:
            generator.set_state(state["generator"])
        else:
            generator.manual_seed(cfg.seed + 1 + 7919 * ranks.rank + step)
    metrics = (
        MetricsLog(run_dir / "metrics.csv", resume_from_step=step if resume else None)
        if ranks.is_main
        else None
    )

    forward_model = model
    if ranks.enabled:
        forward_model = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if t.compile:
        forward_model = torch.compile(forward_model)
    use_bf16 = t.precision == "bf16" or (t.precision == "auto" and dev.type == "cuda")
    autocast = (
        (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    )

    def checkpoint():
        if not ranks.is_main:
            ranks.barrier()
            return
        state = {
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "batches": stream.state_dict(),
            "generator": generator.get_state(),
        }
        save_checkpoint(run_dir, ema.model, OmegaConf.merge(run_cfg, {"step": step}), state)
        plot_loss_curve(run_dir / "metrics.csv", run_dir / "loss_curve.png")
        ranks.barrier()

    def validate() -> tuple[float, float] | None:
        with autocast():
            nats = sequence_bound(
                ema.model,
                graph,
                valid_tokens,
                t_samples=t.val_t_samples,
                batch_size=t.batch_size,
                seed=cfg.seed,
            )
        residues = sum(len(x) for x in valid_tokens)
        total, count, residues = ranks.sum(torch.tensor([float(nats.sum()), len(valid_tokens), residues]))
        if count == 0:
            return None
        return float(total / count), float(total / residues / LN2)

    n_params = model.num_parameters()
    console.print(
        f"[bold]protein-sedd train[/]: {n_params / 1e6:.2f}M parameters on {dev.type}"
        f"{f' x {ranks.world_size} ranks' if ranks.enabled else ''}; "
        f"{len(splits.train)} train / {len(splits.valid)} valid / {len(splits.test)} test sequences; "
        f"run dir {run_dir}"
    )
    started, last_log, tokens_since = time.perf_counter(), time.perf_counter(), 0
    loss_value, valid_bpr, bad_steps = float("nan"), None, 0
    interrupted = False
    columns = [
        TextColumn("[bold blue]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} steps/s"),
        TimeRemainingColumn(),
    ]
    with StopRequest() as stop, Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=t.max_steps, completed=step, loss="-", speed="-")
        model.train()
        while step < t.max_steps:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, t)
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_residues = torch.zeros((), device=dev), 0
            for micro in range(t.accumulate):
                x0, lengths = next(stream)
                residues = int(lengths.sum())  # counted on the host, before the copy
                x0, lengths = x0.to(dev, non_blocking=True), lengths.to(dev, non_blocking=True)
                # under DDP, average gradients once per optimiser step, not once per micro-batch
                last = micro == t.accumulate - 1
                sync = contextlib.nullcontext() if last or not ranks.enabled else forward_model.no_sync()
                with sync:
                    with autocast():
                        if cfg.model.causal:  # the autoregressive baseline
                            per_sequence = sequence_nll(
                                forward_model, x0, lengths, ALPHABET.mask_index, ALPHABET.pad_index
                            )
                        else:
                            per_sequence = score_entropy_loss(
                                forward_model,
                                graph,
                                noise,
                                x0,
                                lengths,
                                generator,
                                t.sampling_eps,
                                time_conditioning=cfg.model.time_conditioning,
                            )
                    loss = per_sequence.sum() / residues
                    (loss / t.accumulate).backward()
                step_loss += loss.detach() / t.accumulate
                step_residues += residues
            # one host sync per step: the loss (non-finite steps are skipped on every rank) and the stop flag
            synced = ranks.sum(
                torch.stack([step_loss.float().cpu(), torch.tensor(float(stop.signal is not None))])
            )
            loss_value, stop_now = float(synced[0]) / ranks.world_size, bool(synced[1] > 0)
            if not math.isfinite(loss_value):
                bad_steps += 1
                console.print(
                    f"[yellow]warning[/]: non-finite loss at step {step}; step skipped ({bad_steps} in a row)"
                )
                if bad_steps >= t.max_bad_steps:
                    raise UserError(
                        f"{bad_steps} non-finite losses in a row at step {step}; stopped with the last good "
                        f"checkpoint in {run_dir / CHECKPOINT_DIR} (try a lower trainer.lr)"
                    )
                continue
            bad_steps = 0
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            optimizer.step()
            ema.update(model, step)
            step += 1
            tokens_since += step_residues * ranks.world_size
            if metrics is not None and (step % t.log_every == 0 or step == t.max_steps):
                now = time.perf_counter()
                metrics.append(
                    step=step,
                    train_loss=f"{loss_value / LN2:.5f}",
                    lr=f"{lr_at(step - 1, t):.3e}",
                    grad_norm=f"{float(grad_norm):.4f}",
                    tokens_per_s=f"{tokens_since / (now - last_log):.1f}",
                    elapsed_s=f"{now - started:.1f}",
                )
                progress.update(
                    task,
                    loss=f"{loss_value / LN2:.3f} bits/res",
                    speed=f"{t.log_every / (now - last_log):.2f}",
                )
                last_log, tokens_since = now, 0
            if step % t.val_every == 0 or step == t.max_steps:
                result = validate()
                if result is not None:
                    nats, valid_bpr = result
                    if metrics is not None:
                        metrics.append(
                            step=step,
                            valid_nats_per_sequence=f"{nats:.4f}",
                            valid_bits_per_residue=f"{valid_bpr:.5f}",
                        )
                    progress.console.print(
                        f"step {step}: valid -ELBO {nats:.2f} nats/sequence, {valid_bpr:.4f} bits/residue"
                    )
            if step % t.checkpoint_every == 0 or step == t.max_steps:
                checkpoint()
            elif stop_now:
                checkpoint()
            progress.update(task, completed=step)
            if stop_now:
                interrupted = True
                progress.console.print(
                    f"[yellow]stopped by signal at step {step}[/]: checkpoint saved; continue with --resume"
                )
                break
    _dump_rank_weights(model, ranks)
    return TrainResult(run_dir, step, loss_value, valid_bpr, interrupted)


def _dump_rank_weights(model: torch.nn.Module, ranks: Distributed) -> None:
    """Testing hook: with PROTEIN_SEDD_RANK_WEIGHTS=DIR each rank saves its final raw weights there."""
    folder = os.environ.get("PROTEIN_SEDD_RANK_WEIGHTS")
    if folder:
        from safetensors.torch import save_file

        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(Path(folder) / f"rank{ranks.rank}.safetensors"))
