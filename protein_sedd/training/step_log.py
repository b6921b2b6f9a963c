"""What a run shows and logs as it trains: the progress bar (loss, speed) and each logged or validated
step's one metrics.csv row (rank 0 writes it)."""

from __future__ import annotations

import time

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.training.metrics import MetricsLog
from protein_sedd.training.schedule import lr_at
from protein_sedd.training.step import Run

PROGRESS_COLUMNS = [
    TextColumn("[bold blue]train"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("loss {task.fields[loss]}"),
    TextColumn("{task.fields[speed]} steps/s"),
    TimeRemainingColumn(),
]


class StepLog:
    """Each step's one metrics.csv row (training numbers, validation, or both; rank 0 writes it) and the
    progress bar's loss and speed, measured since the previous logged step."""

    def __init__(self, run: Run, metrics: MetricsLog | None, progress: Progress, task):
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
