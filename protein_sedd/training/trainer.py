"""The training loop: score entropy, AdamW with warm-up, clipping, EMA, accumulation, validation ELBO.

Everything a run needs to continue lives in its checkpoint (weights, optimiser, EMA, batch position,
noise generator), so `--resume` continues exactly where the run stopped: on a CPU, a resumed run
reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import BatchStream, encode_all
from protein_sedd.data.prepare import prepare_splits
from protein_sedd.data.splits import length_histogram
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.likelihood import LN2, dataset_negative_elbo
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.diffusion.noise import build_noise
from protein_sedd.errors import UserError
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


def validate_config(cfg: DictConfig) -> None:
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
            not cfg.model.causal,
            "model.causal=true is the autoregressive baseline, which this trainer does not train",
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
    console = console or Console(stderr=True)
    validate_config(cfg)
    dev = select_device(device)
    run_dir = Path(run_dir)
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
    stream = BatchStream(
        encode_all([r.sequence for r in splits.train]), t.batch_size, cfg.seed, ALPHABET.pad_index
    )
    valid_tokens = encode_all([r.sequence for r in splits.valid[: t.val_sequences]])
    generator = torch.Generator(device=dev).manual_seed(cfg.seed + 1)

    step = 0
    if resume:
        state = load_trainer_state(resolve_checkpoint_dir(run_dir))
        for key, module in (("model", model), ("ema", ema.model)):
            check_weights(module, state[key], run_dir / CHECKPOINT_DIR)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["batches"])
        generator.set_state(state["generator"])
        step = int(state["step"])
    metrics = MetricsLog(run_dir / "metrics.csv", resume_from_step=step if resume else None)

    forward_model = torch.compile(model) if t.compile else model
    use_bf16 = t.precision == "bf16" or (t.precision == "auto" and dev.type == "cuda")
    autocast = (
        (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    )

    def checkpoint():
        state = {
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "batches": stream.state_dict(),
            "generator": generator.get_state(),
        }
        save_checkpoint(run_dir, ema.model, OmegaConf.merge(run_cfg, {"step": step}), state)

    def validate() -> tuple[float, float] | None:
        if not valid_tokens:
            return None
        with autocast():
            nats = dataset_negative_elbo(
                ema.model,
                graph,
                valid_tokens,
                t_samples=t.val_t_samples,
                batch_size=t.batch_size,
                seed=cfg.seed,
            )
        residues = sum(len(x) for x in valid_tokens)
        return float(nats.mean()), float(nats.sum() / residues / LN2)

    n_params = model.num_parameters()
    console.print(
        f"[bold]protein-sedd train[/]: {n_params / 1e6:.2f}M parameters on {dev.type}; "
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
            total_loss, total_residues = 0.0, 0
            for _ in range(t.accumulate):
                x0, lengths = next(stream)
                x0, lengths = x0.to(dev, non_blocking=True), lengths.to(dev, non_blocking=True)
                residues = int(lengths.sum())
                with autocast():
                    per_sequence = score_entropy_loss(
                        forward_model, graph, noise, x0, lengths, generator, t.sampling_eps
                    )
                loss = per_sequence.sum() / residues
                (loss / t.accumulate).backward()
                total_loss += float(loss.detach()) / t.accumulate
                total_residues += residues
            if not math.isfinite(total_loss):
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
            tokens_since += total_residues
            loss_value = total_loss
            if step % t.log_every == 0 or step == t.max_steps:
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
                plot_loss_curve(run_dir / "metrics.csv", run_dir / "loss_curve.png")
            progress.update(task, completed=step)
            if stop.signal is not None:
                checkpoint()
                plot_loss_curve(run_dir / "metrics.csv", run_dir / "loss_curve.png")
                interrupted = True
                progress.console.print(
                    f"[yellow]stopped by signal {stop.signal} at step {step}[/]: checkpoint saved; "
                    "continue with --resume"
                )
                break
    if step >= t.max_steps and not (run_dir / CHECKPOINT_DIR).exists():
        checkpoint()
    return TrainResult(run_dir, step, loss_value, valid_bpr, interrupted)
