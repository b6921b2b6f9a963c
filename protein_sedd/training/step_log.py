"""What a run shows and logs as it trains: the progress (loss, speed; a validation's sequences) and each
logged or validated step's one metrics.csv row (rank 0 writes it)."""

from __future__ import annotations

import contextlib
import time

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.runtime import progress as loops
from protein_sedd.runtime.progress import LoopProgress, format_duration, log_line
from protein_sedd.training.metrics import MetricsLog
from protein_sedd.training.schedule import lr_at
from protein_sedd.training.step import Run

PROGRESS_COLUMNS = [
    TextColumn("[bold blue]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TextColumn("{task.fields[info]}"),
    TimeRemainingColumn(),
]


class TrainProgress:
    """On a terminal, rich's bar (a validation gets a bar of its own below it); anywhere else (a batch
    job's log, `2> log`), where rich would print nothing until the run ends, one plain line every
    PLAIN_EVERY_S seconds: `train: step 1200/20000 (6%), loss 3.012 bits/res, 4.10 steps/s, 4m52s elapsed,
    ETA 1h16m`, and a long validation's count the same way. The ETA is this session's pace (validations
    included) times the steps left."""

    def __init__(self, console: Console, total: int, start: int):
        self.console, self.total, self.start = console, total, start
        self.step, self.info = start, ""
        self.bar: Progress | None = None

    def __enter__(self) -> TrainProgress:
        self.began = self.last_line = time.perf_counter()
        self.shown = self.start
        if self.console.is_terminal:
            self.bar = Progress(*PROGRESS_COLUMNS, console=self.console, transient=False).__enter__()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def update(self, step: int, info: str | None = None) -> None:
        self.step, self.info = step, self.info if info is None else info
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=self.info)
        elif step != self.shown and time.perf_counter() - self.last_line >= loops.PLAIN_EVERY_S:
            self._print_line()

    def _print_line(self) -> None:
        self.last_line, self.shown = time.perf_counter(), self.step
        log_line(self.console, self.line(self.last_line - self.began))

    def line(self, elapsed: float) -> str:
        done, left = self.step - self.start, self.total - self.step
        eta = format_duration(elapsed / done * left) if done else "unknown"
        info = f", {self.info}" if self.info else ""
        return (
            f"train: step {self.step}/{self.total} ({self.step / self.total:.0%}){info}, "
            f"{format_duration(elapsed)} elapsed, ETA {eta}"
        )

    @contextlib.contextmanager
    def validation(self, sequences: int):
        """`with progress.validation(n) as advance: ...`: a bar (terminal) or a line every PLAIN_EVERY_S
        seconds while the validation sequences are scored; its result is the caller's line."""
        if self.bar is not None:
            task = self.bar.add_task("valid", total=sequences, info="sequences")
            try:
                yield lambda count: self.bar.advance(task, count)
            finally:
                self.bar.remove_task(task)
            return
        label = f"validation at step {self.step}: sequences"
        with LoopProgress(self.console, label, sequences, final_line=False) as loop:
            yield loop.advance
        self.last_line = time.perf_counter()  # the validation's own lines stand for this stretch

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif self.shown != self.step:
            self._print_line()


class StepLog:
    """Each step's one metrics.csv row (training numbers, validation, or both; rank 0 writes it) and the
    progress bar's loss and speed, measured since the previous logged step."""

    def __init__(self, run: Run, metrics: MetricsLog | None, progress: TrainProgress):
        self.run, self.metrics, self.progress = run, metrics, progress
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
            row.update(self._training_numbers(step, loss, lr_at(step - 1, t), float(grad_norm)))
        if step % t.val_every == 0 or step == t.max_steps:
            with self.progress.validation(len(self.run.valid_tokens)) as advance:
                result = self.run.validate(advance)  # on every rank: the ranks sum their shares
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

    def _training_numbers(self, step: int, loss: float, lr: float, grad_norm: float) -> dict:
        now = time.perf_counter()
        row = dict(
            train_loss=f"{loss / LN2:.5f}",
            lr=f"{lr:.3e}",
            grad_norm=f"{grad_norm:.4f}",
            tokens_per_s=f"{self.tokens / (now - self.last):.1f}",
            elapsed_s=f"{now - self.started:.1f}",
        )
        speed = self.run.cfg.trainer.log_every / (now - self.last)
        self.progress.update(step, f"loss {loss / LN2:.3f} bits/res, {speed:.2f} steps/s")
        self.last, self.tokens = now, 0
        return row
